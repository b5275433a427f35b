"""money in 64-bit integers: an order's total and a refund's amount

An order of 100 lines × 10,000 units passes 2³¹ − 1 cents (¥21,474,836.47) at ¥21.48 a unit, and
a group-failed refund is a whole line's amount: both columns become BIGINT on PostgreSQL. SQLite's
INTEGER is 64-bit already (the models say so with a variant), so SQLite is left as it is.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('total_cents', existing_type=sa.Integer(), type_=sa.BigInteger(),
                              existing_nullable=False)
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.alter_column('amount_cents', existing_type=sa.Integer(), type_=sa.BigInteger(),
                              existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.alter_column('amount_cents', existing_type=sa.BigInteger(), type_=sa.Integer(),
                              existing_nullable=False)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('total_cents', existing_type=sa.BigInteger(), type_=sa.Integer(),
                              existing_nullable=False)
