"""crates and handovers: crates and their contents, their routes per plan version, handovers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 17:58:17.443244

Waves cut off before this revision have no crates: they are packed the first time anything
asks for them (the planner, the crate list, the loading pages: `waves.crates.ensure_crates`,
as for every wave), with the configured crate size, once. Their published plans get crate routes on their next
publish; `groupbuy crates list` tells when a wave's published plan has none.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'

branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('crate_item',
    sa.Column('crate_id', sa.Integer(), nullable=False),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('crate_id', 'order_line_id', name=op.f('pk_crate_item')),
    sqlite_with_rowid=False
    )
    op.create_table('crate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wave_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.Integer(), nullable=False),
    sa.Column('zone', sa.Enum('ambient', 'chilled', 'frozen', name='tempzone', native_enum=False, length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('of_n', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('volume_ml', sa.Integer(), nullable=False),
    sa.Column('capacity_ml', sa.Integer(), nullable=False),
    sa.Column('oversize', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_crate_leader_id_leader')),
    sa.ForeignKeyConstraint(['station_id'], ['grid_station.id'], name=op.f('fk_crate_station_id_grid_station')),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_crate_wave_id_wave')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crate')),
    sa.UniqueConstraint('code', 'wave_id', name=op.f('uq_crate_code_wave_id')),
    sa.UniqueConstraint('wave_id', 'leader_id', 'zone', 'seq', name=op.f('uq_crate_wave_id_leader_id_zone_seq'))
    )
    op.create_table('crate_load',
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('crate_id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=True),
    sa.Column('stop_no', sa.Integer(), nullable=True),
    sa.Column('load_seq', sa.Integer(), nullable=True),
    sa.Column('trunk_route_id', sa.Integer(), nullable=True),
    sa.Column('trunk_stop_no', sa.Integer(), nullable=True),
    sa.Column('trunk_load_seq', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['crate_id'], ['crate.id'], name=op.f('fk_crate_load_crate_id_crate')),
    sa.ForeignKeyConstraint(['plan_id'], ['route_plan.id'], name=op.f('fk_crate_load_plan_id_route_plan')),
    sa.ForeignKeyConstraint(['route_id'], ['route_plan_route.id'], name=op.f('fk_crate_load_route_id_route_plan_route')),
    sa.ForeignKeyConstraint(['trunk_route_id'], ['route_plan_route.id'], name=op.f('fk_crate_load_trunk_route_id_route_plan_route')),
    sa.PrimaryKeyConstraint('plan_id', 'crate_id', name=op.f('pk_crate_load'))
    )
    with op.batch_alter_table('crate_load', schema=None) as batch_op:
        batch_op.create_index('ix_crate_load_route_id', ['route_id'], unique=False)
        batch_op.create_index('ix_crate_load_trunk_route_id', ['trunk_route_id'], unique=False)

    op.create_table('handover',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('crate_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Enum('loaded', 'received', 'delivered', name='step', native_enum=False, length=32), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=True),
    sa.Column('station_id', sa.Integer(), nullable=True),
    sa.Column('leader_id', sa.Integer(), nullable=True),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['crate_id'], ['crate.id'], name=op.f('fk_handover_crate_id_crate')),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_handover_leader_id_leader')),
    sa.ForeignKeyConstraint(['route_id'], ['route_plan_route.id'], name=op.f('fk_handover_route_id_route_plan_route')),
    sa.ForeignKeyConstraint(['station_id'], ['grid_station.id'], name=op.f('fk_handover_station_id_grid_station')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_handover_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover')),
    sa.UniqueConstraint('crate_id', 'step', name=op.f('uq_handover_crate_id_step'))
    )
    with op.batch_alter_table('handover', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handover_leader_id'), ['leader_id'], unique=False)

    op.create_table('handover_missing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('crate_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Enum('loaded', 'received', 'delivered', name='step', native_enum=False, length=32), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['crate_id'], ['crate.id'], name=op.f('fk_handover_missing_crate_id_crate')),
    sa.ForeignKeyConstraint(['route_id'], ['route_plan_route.id'], name=op.f('fk_handover_missing_route_id_route_plan_route')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_handover_missing_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_missing')),
    sa.UniqueConstraint('crate_id', 'step', name=op.f('uq_handover_missing_crate_id_step'))
    )
    with op.batch_alter_table('handover_missing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handover_missing_route_id'), ['route_id'], unique=False)

    op.create_table('route_loaded',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('scanned', sa.Integer(), nullable=False),
    sa.Column('missing', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['route_id'], ['route_plan_route.id'], name=op.f('fk_route_loaded_route_id_route_plan_route')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_route_loaded_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_loaded')),
    sa.UniqueConstraint('route_id', name=op.f('uq_route_loaded_route_id'))
    )


def downgrade() -> None:
    op.drop_table('route_loaded')
    with op.batch_alter_table('handover_missing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handover_missing_route_id'))

    op.drop_table('handover_missing')
    with op.batch_alter_table('handover', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handover_leader_id'))

    op.drop_table('handover')
    with op.batch_alter_table('crate_load', schema=None) as batch_op:
        batch_op.drop_index('ix_crate_load_trunk_route_id')
        batch_op.drop_index('ix_crate_load_route_id')

    op.drop_table('crate_load')
    op.drop_table('crate')
    op.drop_table('crate_item')
