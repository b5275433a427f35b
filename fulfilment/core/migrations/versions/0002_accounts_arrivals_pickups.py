"""accounts, sign-in sessions, arrival confirmations and corrections, discrepancies, photos, pickups; refunds owed
become several per order line, each with its own id, reason, amount, time and state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 13:48:39.486510
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

REFUND_STATE = sa.Enum('owed', 'exported', name='refundstate', native_enum=False, length=32)
REFUND_REASON = sa.Enum('tier_price', 'group_failed', 'shortage', name='refundreason', native_enum=False, length=32)


def _rebuild_refund() -> None:
    """refund was keyed by its order line (one per line); it gets an id of its own so that a line
    can carry several. The old rows are copied with the time of their wave's cutoff, state owed."""
    if op.get_bind().dialect.name == 'postgresql':  # primary-key index names are per schema there
        op.execute('ALTER TABLE refund RENAME CONSTRAINT pk_refund TO pk_refund_0001')
    op.rename_table('refund', 'refund_0001')
    op.create_table('refund',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('reason', REFUND_REASON, nullable=False),
    sa.Column('state', REFUND_STATE, nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('exported_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_refund_amount_pos')),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_line.id'], name=op.f('fk_refund_order_line_id_order_line')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund'))
    )
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_order_line_id'), ['order_line_id'], unique=False)
    op.execute(
        "INSERT INTO refund (order_line_id, amount_cents, reason, state, created_at) "
        "SELECT r.order_line_id, r.amount_cents, r.reason, 'owed', "
        "COALESCE(w.cut_off_at, w.cutoff_due_at) FROM refund_0001 r "
        "JOIN order_line l ON l.id = r.order_line_id JOIN orders o ON o.id = l.order_id "
        "JOIN wave w ON w.id = o.wave_id ORDER BY r.order_line_id"
    )
    op.drop_table('refund_0001')


def _restore_refund() -> None:
    """Back to one refund per line: the lines' amounts are summed under their first reason."""
    op.create_table('refund_0001',
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('reason', REFUND_REASON, nullable=False),
    )
    op.execute(
        "INSERT INTO refund_0001 (order_line_id, amount_cents, reason) "
        "SELECT order_line_id, SUM(amount_cents), MIN(reason) FROM refund GROUP BY order_line_id"
    )
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_order_line_id'))
    op.drop_table('refund')
    op.rename_table('refund_0001', 'refund')
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.create_check_constraint('amount_pos', 'amount_cents > 0')
        batch_op.create_foreign_key(batch_op.f('fk_refund_order_line_id_order_line'), 'order_line', ['order_line_id'], ['id'])
        batch_op.create_primary_key('pk_refund', ['order_line_id'])


def upgrade() -> None:
    _rebuild_refund()

    op.create_table('user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('leader', 'pickup_staff', 'warehouse', 'dispatcher', 'admin', name='role', native_enum=False, length=32), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=True),
    sa.Column('region_id', sa.Integer(), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_user_leader_id_leader')),
    sa.ForeignKeyConstraint(['region_id'], ['region.id'], name=op.f('fk_user_region_id_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user')),
    sa.UniqueConstraint('username', name=op.f('uq_user_username'))
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_leader_id'), ['leader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_region_id'), ['region_id'], unique=False)

    op.create_table('arrival',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wave_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(), nullable=False),
    sa.Column('confirmed_by', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['confirmed_by'], ['user.id'], name=op.f('fk_arrival_confirmed_by_user')),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_arrival_leader_id_leader')),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_arrival_wave_id_wave')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arrival')),
    sa.UniqueConstraint('wave_id', 'leader_id', name=op.f('uq_arrival_wave_id_leader_id'))
    )
    with op.batch_alter_table('arrival', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arrival_leader_id'), ['leader_id'], unique=False)

    op.create_table('login_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_login_session_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_session')),
    sa.UniqueConstraint('token', name=op.f('uq_login_session_token'))
    )
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_session_user_id'), ['user_id'], unique=False)

    op.create_table('photo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_photo_leader_id_leader')),
    sa.ForeignKeyConstraint(['uploaded_by'], ['user.id'], name=op.f('fk_photo_uploaded_by_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_photo')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_photo_stored_name'))
    )
    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_photo_leader_id'), ['leader_id'], unique=False)

    op.create_table('arrival_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arrival_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('expected_qty', sa.Integer(), nullable=False),
    sa.Column('counted_qty', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['arrival_id'], ['arrival.id'], name=op.f('fk_arrival_line_arrival_id_arrival')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_arrival_line_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arrival_line')),
    sa.UniqueConstraint('arrival_id', 'product_id', name=op.f('uq_arrival_line_arrival_id_product_id'))
    )
    op.create_table('discrepancy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arrival_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('shortage', 'damaged', 'wrong_item', 'surplus', 'other', name='discrepancykind', native_enum=False, length=32), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('photo_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['arrival_id'], ['arrival.id'], name=op.f('fk_discrepancy_arrival_id_arrival')),
    sa.ForeignKeyConstraint(['photo_id'], ['photo.id'], name=op.f('fk_discrepancy_photo_id_photo')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_discrepancy_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_discrepancy'))
    )
    with op.batch_alter_table('discrepancy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_discrepancy_arrival_id'), ['arrival_id'], unique=False)

    op.create_table('pickup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('verified_at', sa.DateTime(), nullable=False),
    sa.Column('verified_by', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['leader_id'], ['leader.id'], name=op.f('fk_pickup_leader_id_leader')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_pickup_order_id_orders')),
    sa.ForeignKeyConstraint(['verified_by'], ['user.id'], name=op.f('fk_pickup_verified_by_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pickup')),
    sa.UniqueConstraint('order_id', name=op.f('uq_pickup_order_id'))
    )
    with op.batch_alter_table('pickup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pickup_leader_id'), ['leader_id'], unique=False)

    op.create_table('pickup_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pickup_id', sa.Integer(), nullable=False),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_line.id'], name=op.f('fk_pickup_line_order_line_id_order_line')),
    sa.ForeignKeyConstraint(['pickup_id'], ['pickup.id'], name=op.f('fk_pickup_line_pickup_id_pickup')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pickup_line'))
    )
    with op.batch_alter_table('pickup_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pickup_line_order_line_id'), ['order_line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pickup_line_pickup_id'), ['pickup_id'], unique=False)

    op.create_table('arrival_correction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arrival_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('counted_qty', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('corrected_at', sa.DateTime(), nullable=False),
    sa.Column('corrected_by', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['arrival_id'], ['arrival.id'], name=op.f('fk_arrival_correction_arrival_id_arrival')),
    sa.ForeignKeyConstraint(['corrected_by'], ['user.id'], name=op.f('fk_arrival_correction_corrected_by_user')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_arrival_correction_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arrival_correction'))
    )
    with op.batch_alter_table('arrival_correction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arrival_correction_arrival_id'), ['arrival_id'], unique=False)

    op.create_table('shortage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arrival_id', sa.Integer(), nullable=False),
    sa.Column('correction_id', sa.Integer(), nullable=True),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('refund_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['arrival_id'], ['arrival.id'], name=op.f('fk_shortage_arrival_id_arrival')),
    sa.ForeignKeyConstraint(['correction_id'], ['arrival_correction.id'], name=op.f('fk_shortage_correction_id_arrival_correction')),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_line.id'], name=op.f('fk_shortage_order_line_id_order_line')),
    sa.ForeignKeyConstraint(['refund_id'], ['refund.id'], name=op.f('fk_shortage_refund_id_refund')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shortage'))
    )
    with op.batch_alter_table('shortage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shortage_arrival_id'), ['arrival_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shortage_order_line_id'), ['order_line_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('shortage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shortage_order_line_id'))
        batch_op.drop_index(batch_op.f('ix_shortage_arrival_id'))

    op.drop_table('shortage')
    with op.batch_alter_table('arrival_correction', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arrival_correction_arrival_id'))

    op.drop_table('arrival_correction')
    with op.batch_alter_table('pickup_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pickup_line_pickup_id'))
        batch_op.drop_index(batch_op.f('ix_pickup_line_order_line_id'))

    op.drop_table('pickup_line')
    with op.batch_alter_table('pickup', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pickup_leader_id'))

    op.drop_table('pickup')
    with op.batch_alter_table('discrepancy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_discrepancy_arrival_id'))

    op.drop_table('discrepancy')
    op.drop_table('arrival_line')
    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_photo_leader_id'))

    op.drop_table('photo')
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_session_user_id'))

    op.drop_table('login_session')
    with op.batch_alter_table('arrival', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arrival_leader_id'))

    op.drop_table('arrival')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_region_id'))
        batch_op.drop_index(batch_op.f('ix_user_leader_id'))

    op.drop_table('user')
    _restore_refund()
