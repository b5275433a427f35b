"""commission: rates, the ledger of entries, settlement runs, statements and their items

The ledger's partial unique indexes make each write exactly once: one accrual and one
settlement per order line, one reversal per refund (docs/commission.md).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:00:00
"""
import sqlalchemy as sa
from alembic import op

MONEY = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('commission_settlement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('ran_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('settled_lines', sa.Integer(), nullable=False),
    sa.Column('settled_cents', MONEY, nullable=False),
    sa.Column('reversed_cents', MONEY, nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_commission_settlement_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_settlement')),
    sa.UniqueConstraint('region_id', 'day', name=op.f('uq_commission_settlement_region_id_day'))
    )
    op.create_table('commission_rate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('deal_id', sa.Integer(), nullable=True),
    sa.Column('rate_bps', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.CheckConstraint('rate_bps >= 0 AND rate_bps <= 10000', name=op.f('ck_commission_rate_bps_range')),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], name=op.f('fk_commission_rate_deal_id_deal')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_commission_rate_product_id_product')),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_commission_rate_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_rate')),
    sa.UniqueConstraint('region_id', 'scope', name=op.f('uq_commission_rate_region_id_scope'))
    )
    with op.batch_alter_table('commission_rate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_rate_deal_id'), ['deal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_rate_product_id'), ['product_id'], unique=False)

    op.create_table('commission_statement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('period_from', sa.Date(), nullable=False),
    sa.Column('period_to', sa.Date(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('amount_cents', MONEY, nullable=False),
    sa.Column('exported_at', sa.DateTime(), nullable=False),
    sa.Column('exported_by', sa.String(length=64), nullable=False),
    sa.Column('paid_at', sa.DateTime(), nullable=True),
    sa.Column('paid_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_commission_statement_leader_id_leader')),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_commission_statement_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_statement'))
    )
    with op.batch_alter_table('commission_statement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_statement_leader_id'), ['leader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_statement_region_id'), ['region_id'], unique=False)

    op.create_table('commission_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('accrued', 'settled', 'reversed', name='entrykind', native_enum=False, length=32), nullable=False),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('wave_id', sa.Integer(), nullable=False),
    sa.Column('base_cents', MONEY, nullable=False),
    sa.Column('rate_bps', sa.Integer(), nullable=False),
    sa.Column('amount_cents', MONEY, nullable=False),
    sa.Column('collected_at', sa.DateTime(), nullable=False),
    sa.Column('settle_after', sa.DateTime(), nullable=False),
    sa.Column('refund_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.CheckConstraint('amount_cents >= 0', name=op.f('ck_commission_entry_amount_nonneg')),
    sa.CheckConstraint('base_cents >= 0', name=op.f('ck_commission_entry_base_nonneg')),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_commission_entry_leader_id_leader')),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_line.id'], name=op.f('fk_commission_entry_order_line_id_order_line')),
    sa.ForeignKeyConstraint(['refund_id'], ['refund.id'], name=op.f('fk_commission_entry_refund_id_refund')),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_commission_entry_region_id_region')),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_commission_entry_wave_id_wave')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_entry'))
    )
    with op.batch_alter_table('commission_entry', schema=None) as batch_op:
        batch_op.create_index('ix_commission_entry_leader_created', ['leader_id', 'created_at'], unique=False)
        batch_op.create_index('ix_commission_entry_region_kind_due', ['region_id', 'kind', 'settle_after'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_entry_wave_id'), ['wave_id'], unique=False)
        batch_op.create_index('uq_commission_entry_line_kind', ['order_line_id', 'kind'], unique=True, sqlite_where=sa.text("kind <> 'reversed'"), postgresql_where=sa.text("kind <> 'reversed'"))
        batch_op.create_index('uq_commission_entry_refund', ['refund_id'], unique=True, sqlite_where=sa.text('refund_id IS NOT NULL'), postgresql_where=sa.text('refund_id IS NOT NULL'))

    op.create_table('commission_statement_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['commission_entry.id'], name=op.f('fk_commission_statement_item_entry_id_commission_entry')),
    sa.ForeignKeyConstraint(['statement_id'], ['commission_statement.id'], name=op.f('fk_commission_statement_item_statement_id_commission_statement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_statement_item')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_commission_statement_item_entry_id'))
    )
    with op.batch_alter_table('commission_statement_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_statement_item_statement_id'), ['statement_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('commission_statement_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_statement_item_statement_id'))

    op.drop_table('commission_statement_item')
    with op.batch_alter_table('commission_entry', schema=None) as batch_op:
        batch_op.drop_index('uq_commission_entry_refund', sqlite_where=sa.text('refund_id IS NOT NULL'), postgresql_where=sa.text('refund_id IS NOT NULL'))
        batch_op.drop_index('uq_commission_entry_line_kind', sqlite_where=sa.text("kind <> 'reversed'"), postgresql_where=sa.text("kind <> 'reversed'"))
        batch_op.drop_index(batch_op.f('ix_commission_entry_wave_id'))
        batch_op.drop_index('ix_commission_entry_region_kind_due')
        batch_op.drop_index('ix_commission_entry_leader_created')

    op.drop_table('commission_entry')
    with op.batch_alter_table('commission_statement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_statement_region_id'))
        batch_op.drop_index(batch_op.f('ix_commission_statement_leader_id'))

    op.drop_table('commission_statement')
    with op.batch_alter_table('commission_rate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_rate_product_id'))
        batch_op.drop_index(batch_op.f('ix_commission_rate_deal_id'))

    op.drop_table('commission_rate')
    op.drop_table('commission_settlement')
