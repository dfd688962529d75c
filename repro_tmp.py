import json
import subprocess
import sys
import tempfile

from demo_site.static import StaticSites

with StaticSites(['qiming', 'xingguang'], server="nginx") as s, tempfile.TemporaryDirectory() as tmp:
    out = subprocess.run([sys.executable, "-m", "jianfu", "scan", f"a={s.urls['qiming']}", f"b={s.urls['xingguang']}", "--store", tmp, "--json", "--quiet", *sys.argv[1:]], capture_output=True, text=True)
    f = subprocess.run([sys.executable, "-m", "jianfu", "findings", "--store", tmp, "--format", "jsonl"], capture_output=True, text=True).stdout
    for line in f.splitlines():
        d = json.loads(line)
        print(d["url"].split("/", 3)[3], d["source"], (d.get("image_url") or "")[-25:], d["rule_id"], d["text"])
