"""refunds: the export batch that took each exported refund

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 15:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Refunds exported before have no batch: they were exported one file per run, unrecorded.
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('export_batch', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_refund_export_batch'), ['export_batch'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_export_batch'))
        batch_op.drop_column('export_batch')
