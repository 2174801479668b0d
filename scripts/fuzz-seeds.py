"""Seed corpora for the fuzz targets, from the committed test vectors and fixtures."""
import json, os, sys

root, out = sys.argv[1], sys.argv[2]

def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

vec = os.path.join(root, "crates/labvault-crypto/tests/vectors")
blob = json.load(open(os.path.join(vec, "blob-v1.json")))
for i, c in enumerate(blob["cases"]):
    put("blob_decrypt", f"vector-{i}", bytes.fromhex(c["blob"]))
sharing = json.load(open(os.path.join(vec, "sharing-v1.json")))
for i, e in enumerate(sharing["log"]):
    for k in ("entry", "bytes", "wire"):
        if isinstance(e, dict) and k in e:
            put("membership_entry", f"log-{i}", bytes.fromhex(e[k]))
for i, r in enumerate(sharing.get("log_refusals", [])):
    for k in ("entry", "bytes", "wire"):
        if isinstance(r, dict) and k in r:
            put("membership_entry", f"refusal-{i}", bytes.fromhex(r[k]))
sync = json.load(open(os.path.join(vec, "sync-v1.json")))
for k, v in sync.items():
    if isinstance(v, dict) and "sealed" in v:
        put("sync_payload", k, bytes.fromhex(v["sealed"]))
key = os.path.join(root, "crates/labvault-core/tests/fixtures/vault-v1/vault.key")
if os.path.exists(key):
    put("key_file", "fixture-v1", open(key, "rb").read())
put("key_file", "minimal", '{"format":"labvault-keyfile","version":2}')
put("recovery_key", "shape", "7Q2M-ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345-6789-ABCD-EFGH-JKMN-PQRS-TV00")
for n in ["a/b c/d.csv", "../x", "é/日本/🧪.txt", "a//b", "nul\x00"]:
    put("names", n.encode().hex()[:16], n)
put("audit_export", "jsonl", '{"timestamp":"2026-01-01T00:00:00Z","user":"u","action":"data.import","resource":"r","ip_address":"","user_agent":"","result":"success","detail":"","device_id":"d","seq":1,"v":1,"prev_hash":"00","hash":"00"}\n')
put("audit_export", "csv", "timestamp,user,action,resource,ip_address,user_agent,result,detail,device_id,seq,v,prev_hash,hash\n")
put("server_json", "login", '{"tenant":"lab","email":"a@b.cd","password":"x"}')
put("server_json", "commit", '{"ops":[{"op_id":"o","item_id":"i","base_rev":0,"epoch":1,"payload":"AQID","blobs":[],"tombstone":false}]}')
put("server_json", "membership", '{"entry":"AQID","boxes":[{"user_id":"u","epoch":1,"sealed":"AA=="}],"link":null}')
put("jwt", "shape", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln")

# A small project bundle (.tar), as `labvault export-project` lays it out, for bundle_verify.
import hashlib, io, tarfile
def bundle_tar():
    files = {"files/uploads/a.csv": b"x,y\n1,2\n"}
    manifest = [{"id": "i1", "area": "uploads", "path": "a.csv", "file": f, "size": len(b),
                 "sha256": hashlib.sha256(b).hexdigest(), "media_type": "text/csv",
                 "data_type": "research_data", "created_by": "ann", "created_at": "2026-12-07T00:00:00Z",
                 "updated_at": "2026-12-07T00:00:00Z", "version": 1, "retention_period": "7y",
                 "retention_expires_at": "2033-12-07T00:00:00Z", "on_hold": False, "role": "current"}
                for f, b in files.items()]
    meta = {"manifest.json": json.dumps(manifest).encode(), "checkpoints.json": b"[]",
            "audit.jsonl": b""}
    info = {"format": "labvault-bundle/1", "project_id": "p1", "project": "p",
            "exported_at": "2026-12-07T00:00:00Z", "exported_by": "ann", "exported_with": "seed",
            "files": 1, "bytes": sum(len(b) for b in files.values()),
            "audit": {"events": 0, "chain_head": None},
            "metadata": [{"name": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                         for n, b in meta.items()], "notes": []}
    meta["bundle.json"] = json.dumps(info).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, b in list(files.items()) + list(meta.items()):
            ti = tarfile.TarInfo(name)
            ti.size = len(b)
            t.addfile(ti, io.BytesIO(b))
    return out.getvalue()
put("bundle_verify", "bundle", bundle_tar())
