"""The institution ledger (台账): who may train whom, and what their sites must match.

Owns: reading the supervision platform's export (CSV in GBK or UTF-8, XLSX, streamed) into
validated institution records (``records``, ``reader``, ``importer``), the unified social credit
code and licence checks (``codes``), linking each scanned site to its institution and the
cross-checks that turn a mismatch between the ledger and a site into findings (``crosscheck``: pure;
``scan``: the step after each scan), and ``jianfu institutions``. The SQL lives in
``store/ledger.py``; scan plans that target the ledger live in ``scheduler/plans.py``.
"""
