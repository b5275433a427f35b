"""API clients; idempotency keys scoped by source, with a request fingerprint

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-27 14:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_api_client_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_client')),
    sa.UniqueConstraint('name', name=op.f('uq_api_client_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_client_token_hash'))
    )
    with op.batch_alter_table('api_client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_client_region_id'), ['region_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_scope', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('request_fingerprint', sa.String(length=64), nullable=True))
        batch_op.drop_constraint('uq_orders_idempotency_key', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_orders_idempotency_scope_idempotency_key'), ['idempotency_scope', 'idempotency_key'])

    # Keys imported before were global; they now belong to their region's CSV imports.
    op.execute(
        "UPDATE orders SET idempotency_scope = 'csv:' || "
        "(SELECT code FROM region WHERE region.id = orders.region_id) WHERE source = 'csv'"
    )


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_orders_idempotency_scope_idempotency_key'), type_='unique')
        batch_op.create_unique_constraint('uq_orders_idempotency_key', ['idempotency_key'])
        batch_op.drop_column('request_fingerprint')
        batch_op.drop_column('idempotency_scope')

    with op.batch_alter_table('api_client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_client_region_id'))

    op.drop_table('api_client')
