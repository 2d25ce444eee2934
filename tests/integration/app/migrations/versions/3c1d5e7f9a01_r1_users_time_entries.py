"""r1: users, time_entries, settings

Revision ID: 3c1d5e7f9a01
Revises:
Create Date: 2026-11-01 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "3c1d5e7f9a01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(80), nullable=False, unique=True),
        sa.Column("role", sa.String(20)))
    op.create_table(
        "time_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("start", sa.String(32)),
        sa.Column("end", sa.String(32)),
        sa.Column("notes", sa.Text()))
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200)))


def downgrade():
    op.drop_table("settings")
    op.drop_table("time_entries")
    op.drop_table("users")
