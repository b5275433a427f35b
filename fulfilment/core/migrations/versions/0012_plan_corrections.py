"""the dispatcher's corrections: a version's origin, note and broken rules; locks; requests

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('route_plan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('based_on_id', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('change_note', sa.String(length=200), nullable=False, server_default='')
        )
        batch_op.add_column(sa.Column('broken', sa.Text(), nullable=False, server_default=''))
        batch_op.create_foreign_key(
            batch_op.f('fk_route_plan_based_on_id_route_plan'), 'route_plan', ['based_on_id'], ['id']
        )
    op.create_table(
        'route_plan_lock',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('stop_code', sa.String(length=32), nullable=False),
        sa.Column('vehicle_code', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['plan_id'], ['route_plan.id'], name=op.f('fk_route_plan_lock_plan_id_route_plan')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_route_plan_lock')),
        sa.UniqueConstraint('plan_id', 'stop_code', name=op.f('uq_route_plan_lock_plan_id_stop_code')),
    )
    op.create_index(op.f('ix_route_plan_lock_plan_id'), 'route_plan_lock', ['plan_id'], unique=False)
    op.create_table(
        'route_plan_correction',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('wave_id', sa.Integer(), nullable=False),
        sa.Column('base_plan_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=True),
        sa.Column('stop_code', sa.String(length=32), nullable=True),
        sa.Column('vehicle_code', sa.String(length=32), nullable=True),
        sa.Column('position', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('result_plan_id', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_route_plan_correction_wave_id_wave')),
        sa.ForeignKeyConstraint(['base_plan_id'], ['route_plan.id'], name=op.f('fk_route_plan_correction_base_plan_id_route_plan')),
        sa.ForeignKeyConstraint(['result_plan_id'], ['route_plan.id'], name=op.f('fk_route_plan_correction_result_plan_id_route_plan')),
        sa.ForeignKeyConstraint(['station_id'], ['grid_station.id'], name=op.f('fk_route_plan_correction_station_id_grid_station')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_route_plan_correction')),
    )
    op.create_index(op.f('ix_route_plan_correction_wave_id'), 'route_plan_correction', ['wave_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_route_plan_correction_wave_id'), table_name='route_plan_correction')
    op.drop_table('route_plan_correction')
    op.drop_index(op.f('ix_route_plan_lock_plan_id'), table_name='route_plan_lock')
    op.drop_table('route_plan_lock')
    with op.batch_alter_table('route_plan', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_route_plan_based_on_id_route_plan'), type_='foreignkey')
        batch_op.drop_column('broken')
        batch_op.drop_column('change_note')
        batch_op.drop_column('based_on_id')
