"""webapp — the investigators' web app (Django): log in, see cases, search, review, export evidence.

Owns: the Django project (``settings``, ``urls``, the ``webapp`` app with its models: user
profiles with districts, review proposals, the hash-chained audit log), the pages investigators
use (总览, 线索, 机构, 扫描, case detail), role and district checks, security headers, and the
``jianfu serve`` / ``jianfu users`` / ``jianfu audit`` commands. The cases themselves and their
review status live in the store (``store``); full-text search goes through ``search``; packets
are built by ``evidence``; scan plans and runs belong to ``scheduler``. The app's own tables live
in ``<store>/webapp.sqlite3`` unless ``JIANFU_WEB_DB`` names a PostgreSQL database. See docs/webapp.md.
"""
