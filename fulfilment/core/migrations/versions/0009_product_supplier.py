"""a product's supplier (optional): the purchase list (以销定采) groups the wave's totals by it

Revision ID: 0009
Revises: 0008 (0007 before the crates branch was merged in)
Create Date: 2026-12-04 18:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supplier', sa.String(length=100), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN on both databases (SQLite ≥ 3.35): a batch copy of the table
    # would drop the old one, which the foreign keys of deals and order lines refuse.
    op.execute('ALTER TABLE product DROP COLUMN supplier')
