"""12345 practice: an order's 催办/督办 level, gate duty shifts, notification targets and outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('work_order') as batch:
        batch.add_column(sa.Column('level', sa.String(length=16), nullable=True))
    op.create_table(
        'duty_shift',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('event_id', sa.String(length=64), nullable=False, unique=True),
        sa.Column('ts', sa.DateTime(), nullable=False),
        sa.Column('gate_id', sa.String(length=32), sa.ForeignKey('gate.id'), nullable=False),
        sa.Column('starts_at', sa.DateTime(), nullable=False),
        sa.Column('ends_at', sa.DateTime(), nullable=False, index=True),
        sa.Column('guards', sa.JSON(), nullable=False))
    op.create_index('ix_duty_shift_gate_start', 'duty_shift', ['gate_id', 'starts_at'])
    op.create_table(
        'notify_target',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('committee_id', sa.String(length=24), sa.ForeignKey('committee.id'), nullable=False, index=True),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('url', sa.String(length=512), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False))
    op.create_table(
        'notification',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('key', sa.String(length=160), nullable=False, unique=True),
        sa.Column('target_id', sa.Integer(), sa.ForeignKey('notify_target.id', ondelete='CASCADE'), nullable=False,
                  index=True),
        sa.Column('order_id', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('link', sa.String(length=512), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('next_at', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('delivered_at', sa.DateTime(), nullable=True))
    op.create_index('ix_notification_due', 'notification', ['delivered_at', 'next_at'])


def downgrade() -> None:
    op.drop_table('notification')
    op.drop_table('notify_target')
    op.drop_table('duty_shift')
    with op.batch_alter_table('work_order') as batch:
        batch.drop_column('level')
