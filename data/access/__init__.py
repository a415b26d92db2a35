"""Who may see and do what: accounts, roles scoped to streets and committees, producer tokens,
paired screens, sessions and the audit trail.

Why a package of its own: every route, callback, export and stream asks the same question —
"may this actor see or do this, here?" — and ``policy`` is the one place that answers it.
``accounts`` keeps people, sessions and one-time links; ``devices`` the producer tokens and
the paired screens; ``audit`` the append-only trail. The web binding (cookies, CSRF, sign-in
pages) lives in ``dashboard.access``.
"""
