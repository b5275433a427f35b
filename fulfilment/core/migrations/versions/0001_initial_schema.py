"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 03:42:43.451879
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_entity', ['entity', 'entity_id'], unique=False)

    op.create_table('pick_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wave_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Enum('warehouse', 'station', 'leader', name='picklevel', native_enum=False, length=32), nullable=False),
    sa.Column('station_id', sa.Integer(), nullable=True),
    sa.Column('leader_id', sa.Integer(), nullable=True),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('zone', sa.Enum('ambient', 'chilled', 'frozen', name='tempzone', native_enum=False, length=32), nullable=False),
    sa.Column('bin_code', sa.String(length=32), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('weight_g', sa.Integer(), nullable=False),
    sa.Column('volume_ml', sa.Integer(), nullable=False),
    sa.Column('order_lines', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pick_line'))
    )
    with op.batch_alter_table('pick_line', schema=None) as batch_op:
        batch_op.create_index('ix_pick_line_wave_level', ['wave_id', 'level'], unique=False)

    op.create_table('product',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('weight_g', sa.Integer(), nullable=False),
    sa.Column('volume_ml', sa.Integer(), nullable=False),
    sa.Column('zone', sa.Enum('ambient', 'chilled', 'frozen', name='tempzone', native_enum=False, length=32), nullable=False),
    sa.Column('bin_code', sa.String(length=32), nullable=False),
    sa.CheckConstraint('volume_ml >= 0', name=op.f('ck_product_volume_nonneg')),
    sa.CheckConstraint('weight_g >= 0', name=op.f('ck_product_weight_nonneg')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product')),
    sa.UniqueConstraint('sku', name=op.f('uq_product_sku'))
    )
    op.create_table('region',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('tz', sa.String(length=64), nullable=False),
    sa.Column('cutoff_time', sa.Time(), nullable=False),
    sa.Column('delivery_offset_days', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Double(), nullable=False),
    sa.Column('lon', sa.Double(), nullable=False),
    sa.Column('radius_km', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_region')),
    sa.UniqueConstraint('code', name=op.f('uq_region_code'))
    )
    op.create_table('deal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('delivery_date', sa.Date(), nullable=False),
    sa.Column('base_price_cents', sa.Integer(), nullable=False),
    sa.Column('stock_cap', sa.Integer(), nullable=True),
    sa.Column('sold_qty', sa.Integer(), nullable=False),
    sa.Column('min_group_members', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('open', 'confirmed', 'cancelled', name='dealstatus', native_enum=False, length=32), nullable=False),
    sa.Column('final_price_cents', sa.Integer(), nullable=True),
    sa.CheckConstraint('base_price_cents >= 0', name=op.f('ck_deal_price_nonneg')),
    sa.CheckConstraint('sold_qty >= 0', name=op.f('ck_deal_sold_nonneg')),
    sa.CheckConstraint('stock_cap IS NULL OR sold_qty <= stock_cap', name=op.f('ck_deal_no_oversell')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_deal_product_id_product')),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_deal_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deal')),
    sa.UniqueConstraint('region_id', 'product_id', 'delivery_date', name=op.f('uq_deal_region_id_product_id_delivery_date'))
    )
    with op.batch_alter_table('deal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deal_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deal_region_id'), ['region_id'], unique=False)

    op.create_table('warehouse',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('lat', sa.Double(), nullable=False),
    sa.Column('lon', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_warehouse_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_warehouse')),
    sa.UniqueConstraint('code', name=op.f('uq_warehouse_code'))
    )
    with op.batch_alter_table('warehouse', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_warehouse_region_id'), ['region_id'], unique=False)

    op.create_table('wave',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('delivery_date', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('open', 'cut_off', name='wavestatus', native_enum=False, length=32), nullable=False),
    sa.Column('cutoff_due_at', sa.DateTime(), nullable=False),
    sa.Column('cut_off_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_wave_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wave')),
    sa.UniqueConstraint('region_id', 'delivery_date', name=op.f('uq_wave_region_id_delivery_date'))
    )
    op.create_table('cutoff_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wave_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=False),
    sa.Column('orders_locked', sa.Integer(), nullable=False),
    sa.Column('lines_locked', sa.Integer(), nullable=False),
    sa.Column('deals_cancelled', sa.Integer(), nullable=False),
    sa.Column('orders_cancelled', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_cutoff_run_wave_id_wave')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cutoff_run')),
    sa.UniqueConstraint('wave_id', name=op.f('uq_cutoff_run_wave_id'))
    )
    op.create_table('grid_station',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('lat', sa.Double(), nullable=False),
    sa.Column('lon', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_grid_station_region_id_region')),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouse.id'], name=op.f('fk_grid_station_warehouse_id_warehouse')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grid_station')),
    sa.UniqueConstraint('code', name=op.f('uq_grid_station_code'))
    )
    with op.batch_alter_table('grid_station', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grid_station_region_id'), ['region_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_grid_station_warehouse_id'), ['warehouse_id'], unique=False)

    op.create_table('price_tier',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('min_qty', sa.Integer(), nullable=False),
    sa.Column('price_cents', sa.Integer(), nullable=False),
    sa.CheckConstraint('min_qty > 0', name=op.f('ck_price_tier_min_qty_pos')),
    sa.CheckConstraint('price_cents >= 0', name=op.f('ck_price_tier_price_nonneg')),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], name=op.f('fk_price_tier_deal_id_deal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_tier')),
    sa.UniqueConstraint('deal_id', 'min_qty', name=op.f('uq_price_tier_deal_id_min_qty'))
    )
    with op.batch_alter_table('price_tier', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_price_tier_deal_id'), ['deal_id'], unique=False)

    op.create_table('leader',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('pickup_name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('lat', sa.Double(), nullable=False),
    sa.Column('lon', sa.Double(), nullable=False),
    sa.Column('window_open', sa.Time(), nullable=False),
    sa.Column('window_close', sa.Time(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_leader_region_id_region')),
    sa.ForeignKeyConstraint(['station_id'], ['grid_station.id'], name=op.f('fk_leader_station_id_grid_station')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leader')),
    sa.UniqueConstraint('code', name=op.f('uq_leader_code'))
    )
    with op.batch_alter_table('leader', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leader_region_id'), ['region_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_leader_station_id'), ['station_id'], unique=False)

    op.create_table('member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_member_leader_id_leader')),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_member_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member')),
    sa.UniqueConstraint('external_id', name=op.f('uq_member_external_id'))
    )
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_leader_id'), ['leader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_region_id'), ['region_id'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('wave_id', sa.Integer(), nullable=False),
    sa.Column('placed_at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.Enum('placed', 'cancelled', 'cancelled_for_refund', name='orderstatus', native_enum=False, length=32), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('pickup_code', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('total_cents', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_orders_leader_id_leader')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_orders_member_id_member')),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_orders_region_id_region')),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_orders_wave_id_wave')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_orders_idempotency_key')),
    sa.UniqueConstraint('leader_id', 'wave_id', 'pickup_code', name=op.f('uq_orders_leader_id_wave_id_pickup_code'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_leader_id'), ['leader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_orders_wave_status', ['wave_id', 'status'], unique=False)

    op.create_table('order_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price_cents', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('active', 'cancelled', name='linestatus', native_enum=False, length=32), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_order_line_qty_pos')),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], name=op.f('fk_order_line_deal_id_deal')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_line_order_id_orders')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_order_line_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_line'))
    )
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_line_deal_id'), ['deal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_line_order_id'), ['order_id'], unique=False)

    op.create_table('refund',
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Enum('tier_price', 'group_failed', name='refundreason', native_enum=False, length=32), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_refund_amount_pos')),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_line.id'], name=op.f('fk_refund_order_line_id_order_line')),
    sa.PrimaryKeyConstraint('order_line_id', name=op.f('pk_refund'))
    )



def downgrade() -> None:

    op.drop_table('refund')
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_line_order_id'))
        batch_op.drop_index(batch_op.f('ix_order_line_deal_id'))

    op.drop_table('order_line')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_wave_status')
        batch_op.drop_index(batch_op.f('ix_orders_member_id'))
        batch_op.drop_index(batch_op.f('ix_orders_leader_id'))

    op.drop_table('orders')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_region_id'))
        batch_op.drop_index(batch_op.f('ix_member_leader_id'))

    op.drop_table('member')
    with op.batch_alter_table('leader', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_leader_station_id'))
        batch_op.drop_index(batch_op.f('ix_leader_region_id'))

    op.drop_table('leader')
    with op.batch_alter_table('price_tier', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_price_tier_deal_id'))

    op.drop_table('price_tier')
    with op.batch_alter_table('grid_station', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grid_station_warehouse_id'))
        batch_op.drop_index(batch_op.f('ix_grid_station_region_id'))

    op.drop_table('grid_station')
    op.drop_table('cutoff_run')
    op.drop_table('wave')
    with op.batch_alter_table('warehouse', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_warehouse_region_id'))

    op.drop_table('warehouse')
    with op.batch_alter_table('deal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deal_region_id'))
        batch_op.drop_index(batch_op.f('ix_deal_product_id'))

    op.drop_table('deal')
    op.drop_table('region')
    op.drop_table('product')
    with op.batch_alter_table('pick_line', schema=None) as batch_op:
        batch_op.drop_index('ix_pick_line_wave_level')

    op.drop_table('pick_line')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_entity')

    op.drop_table('audit_log')

