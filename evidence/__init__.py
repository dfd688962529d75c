"""Evidence packets: what investigators take to enforcement.

``evidence`` owns turning stored captures and findings into one self-checking packet (a .zip):

- ``evidence.wacz`` — the relevant WARC records (pages, their ad images, screenshots) as a WACZ
  that ``wacz validate`` accepts and ReplayWeb.page replays;
- ``findings.json`` — each finding with its legal basis, capture time (UTC and 北京时间), server IP
  and pointers to its WARC records;
- ``highlights/`` and ``images/`` — screenshots / ad images with the matched text boxed;
- ``report.html`` + ``report.pdf`` — the Chinese, printable report (one section per finding);
- ``custody.json`` — the chain of custody from capture to export;
- ``manifest.json`` (SHA-256 + size of every file) signed with the store's Ed25519 key
  (``manifest.sig``, ``public_key.pem``), optionally time-stamped by an RFC 3161 TSA
  (``manifest.tsr``).

``jianfu export`` builds a packet (``evidence.packet``), ``jianfu verify`` checks one
(``evidence.verify``). See docs/evidence.md.
"""
