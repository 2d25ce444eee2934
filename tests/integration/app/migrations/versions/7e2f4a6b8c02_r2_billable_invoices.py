"""r2: time_entries.billable, invoices (foreign key to users)

Revision ID: 7e2f4a6b8c02
Revises: 3c1d5e7f9a01
Create Date: 2026-11-15 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "7e2f4a6b8c02"
down_revision = "3c1d5e7f9a01"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("time_entries", sa.Column("billable", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False))


def downgrade():
    op.drop_table("invoices")
    with op.batch_alter_table("time_entries") as b:
        b.drop_column("billable")
