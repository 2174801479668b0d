//! The compliance evidence pack of a project: what a data protection officer or a 21 CFR Part 11
//! / HIPAA reviewer reads and checks, generated from the vault (never typed in), each file with
//! its SHA-256 in the pack's manifest.
//!
//! ```text
//! index.html                 the summary, readable in any browser (no script)
//! processing-record.json     GDPR Art. 30 style: data categories, purposes (entered by the
//!                            user), retention in force, recipients, technical measures
//! audit-evidence.json        chain verification (as run now), first/last event, counts
//! retention-evidence.json    erasures (when, why), legal holds (why), what is due next
//! access-evidence.json       who can reach the project (and, when the caller adds it, the lab's
//!                            access review from the tenant)
//! controls.json, controls.csv  Part 11 §11.10 (a)-(k) and HIPAA §164.312 (a)-(e), each row
//!                            pointing at the file that shows it, saying plainly what is not covered
//! manifest.json, SHA256SUMS  every file's SHA-256
//! ```
//!
//! The pack tells the truth about the vault as it is: a broken audit chain makes the audit
//! control `failing` and the summary says where it broke.

use crate::bundle::csv_field;
use crate::error::{Error, Result};
use crate::fsutil::{rfc3339, Staging};
use crate::model::{ItemState, ListFilter};
use crate::vault::Vault;
use labvault_governance::audit::{actions, resources};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What the caller adds to a pack.
#[derive(Clone, Debug, Default)]
pub struct EvidenceOptions {
    /// Purposes of the processing, in the user's words (the one thing a pack does not know).
    pub purposes: Vec<String>,
    /// The lab's access evidence from the tenant (access review, MFA, sign-offs), when the
    /// caller is signed in; the pack says so when it is absent.
    pub tenant_access: Option<Value>,
}

/// What [`Vault::evidence_pack`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct EvidenceSummary {
    /// The pack's directory.
    pub path: PathBuf,
    /// Files in it.
    pub files: Vec<String>,
    /// Whether the audit chain verified.
    pub audit_ok: bool,
    /// Controls by status (`covered`, `partly`, `not covered`, `failing`).
    pub controls: BTreeMap<String, u64>,
}

/// One row of the controls matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Control {
    /// Framework (`21 CFR Part 11`, `HIPAA`).
    pub framework: &'static str,
    /// Section (`11.10(a)`, `164.312(b)`).
    pub section: &'static str,
    /// What it requires, in short.
    pub requirement: &'static str,
    /// How LabVault serves it, or why it does not.
    pub labvault: String,
    /// The file of this pack that shows it (empty when nothing can).
    pub evidence: &'static str,
    /// `covered`, `partly`, `not covered` or `failing`.
    pub status: &'static str,
}

const HIPAA: &str = "HIPAA";
const PART11: &str = "21 CFR Part 11";

/// Facts the controls depend on.
struct Facts {
    audit_ok: bool,
    audit_problem: Option<String>,
    shared: bool,
    tenant: bool,
}

fn controls(f: &Facts) -> Vec<Control> {
    let audit = if f.audit_ok { "covered" } else { "failing" };
    let audit_note = f
        .audit_problem
        .as_deref()
        .map(|p| format!(" The chain does NOT verify now: {p}."))
        .unwrap_or_default();
    let access_status = if f.tenant { "covered" } else { "partly" };
    let c = |framework, section, requirement, labvault: &str, evidence, status| Control {
        framework,
        section,
        requirement,
        labvault: labvault.to_string(),
        evidence,
        status,
    };
    vec![
        c(PART11, "11.10(a)", "Validation; ability to discern invalid or altered records",
          "Every version carries its SHA-256 and every chunk an AES-GCM tag, checked on each read, export and `labvault verify`; system validation (IQ/OQ/PQ) is the lab's to perform.",
          "audit-evidence.json", "partly"),
        c(PART11, "11.10(b)", "Accurate and complete copies in human-readable and electronic form",
          "`labvault export-project` writes every file with a manifest (JSON, CSV, Excel) and the audit trail, verifiable offline.",
          "processing-record.json", "covered"),
        c(PART11, "11.10(c)", "Protection of records for ready retrieval throughout retention",
          "Retention periods per data type, legal holds, soft delete before cryptographic erasure, encryption at rest.",
          "retention-evidence.json", "covered"),
        c(PART11, "11.10(d)", "Limiting system access to authorized individuals",
          "The vault opens only with its passphrase, the OS keyring or the recovery key; on the lab's tenant, roles per project and MFA.",
          "access-evidence.json", access_status),
        c(PART11, "11.10(e)", "Secure, computer-generated, time-stamped audit trail; changes do not obscure earlier records",
          &format!("Every action is a hash-chained audit event (timestamp, user, action, resource, result); versions are kept, never overwritten.{audit_note}"),
          "audit-evidence.json", audit),
        c(PART11, "11.10(f)", "Operational system checks enforcing permitted sequencing of steps",
          "Not covered: LabVault keeps records; it does not enforce a workflow's sequence of steps.",
          "", "not covered"),
        c(PART11, "11.10(g)", "Authority checks (who may use, sign, alter records)",
          "Roles (Owner, Admin, Editor, Viewer) and MFA step-up for admin actions on the tenant; LabVault has no electronic signatures under Part 11 subpart C.",
          "access-evidence.json", "partly"),
        c(PART11, "11.10(h)", "Device checks on the source of data input",
          "Each device is approved by pairing code before it syncs; instrument-folder imports name their watch in the audit trail.",
          "audit-evidence.json", "partly"),
        c(PART11, "11.10(i)", "Education, training and experience of users",
          "Not covered: organisational.", "", "not covered"),
        c(PART11, "11.10(j)", "Written policies holding individuals accountable for electronic signatures",
          "Not covered: organisational (and LabVault has no electronic signatures).", "", "not covered"),
        c(PART11, "11.10(k)", "Controls over systems documentation",
          "LabVault's documentation is versioned with its releases; the lab's SOPs are not covered.",
          "", "partly"),
        c(HIPAA, "164.312(a)", "Access control: unique users, emergency access, automatic logoff, encryption",
          "Per-user accounts on the tenant, a recovery key for emergency access, auto-lock after idle time, AES-256-GCM at rest.",
          "processing-record.json", access_status),
        c(HIPAA, "164.312(b)", "Audit controls",
          &format!("The hash-chained audit trail of the vault (and of the tenant when connected).{audit_note}"),
          "audit-evidence.json", audit),
        c(HIPAA, "164.312(c)", "Integrity: ePHI not improperly altered or destroyed",
          "SHA-256 per version, authenticated encryption, erasure only after retention or by an audited purge; legal holds block it.",
          "retention-evidence.json", "covered"),
        c(HIPAA, "164.312(d)", "Person or entity authentication",
          "Vault passphrase (Argon2id); tenant password and TOTP MFA.",
          "access-evidence.json", access_status),
        c(HIPAA, "164.312(e)", "Transmission security",
          if f.shared || f.tenant {
              "TLS with a pinned certificate to the tenant, and end-to-end encryption: the server stores ciphertext only."
          } else {
              "This project has not left the device; when synced: TLS with a pinned certificate and end-to-end encryption (the server stores ciphertext only)."
          },
          "processing-record.json", "covered"),
    ]
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

impl Vault {
    /// Writes the compliance evidence pack of `project` into the new directory `dest` (built
    /// under a hidden name and renamed when complete). Re-verifies the audit chain (recorded as
    /// `audit.verify`) and records `evidence.export` on the project.
    pub fn evidence_pack(
        &self,
        project: &str,
        dest: &Path,
        opts: &EvidenceOptions,
    ) -> Result<EvidenceSummary> {
        let p = self.project(project)?;
        if fs::symlink_metadata(dest).is_ok() {
            return Err(Error::AlreadyExists(format!(
                "{} exists: choose a new folder for the evidence pack",
                dest.display()
            )));
        }

        // The chain, verified now (a break is evidence, not an error of the pack).
        let (audit_ok, audit_problem, reports) = match self.audit_verify(&mut |_, _| {}) {
            Ok(r) => (true, None, r),
            Err(e @ (Error::ChainBroken { .. } | Error::Tampered { .. })) => {
                (false, Some(e.to_string()), Vec::new())
            }
            Err(e) => return Err(e),
        };
        let outcome = self.read_op(actions::DATA_EXPORT, resources::project(&p.id), || {
            let s =
                self.write_evidence(&p.id, &p.name, dest, opts, audit_ok, audit_problem, reports)?;
            let detail = format!(
                "evidence_pack files={} audit_ok={}",
                s.files.len(),
                s.audit_ok
            );
            Ok((s, detail))
        })?;
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_evidence(
        &self,
        project_id: &str,
        project_name: &str,
        dest: &Path,
        opts: &EvidenceOptions,
        audit_ok: bool,
        audit_problem: Option<String>,
        reports: Vec<labvault_governance::audit::ChainReport>,
    ) -> Result<EvidenceSummary> {
        let now = self.now();
        let items = self.list(&ListFilter {
            project: Some(project_id.into()),
            all_states: true,
            ..Default::default()
        })?;
        // Categories of data: live items by data type.
        let mut categories: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for i in items.iter().filter(|i| i.state != ItemState::Erased) {
            let e = categories.entry(i.data_type.to_string()).or_default();
            e.0 += 1;
            e.1 += i.size;
        }
        let policies = self.retention_policies()?;
        let policy = policies
            .projects
            .iter()
            .find(|x| x.project_id == project_id)
            .map(|x| serde_json::to_value(&x.effective).unwrap_or(Value::Null))
            .unwrap_or_else(|| serde_json::to_value(&policies.effective).unwrap_or(Value::Null));
        let membership = self.sync_membership(project_id)?;
        let recipients: Vec<Value> = match &membership {
            Some(m) => m
                .members
                .iter()
                .map(|x| json!({"user_id": x.user_id, "role": x.role.to_string(), "safety_number": x.safety_number}))
                .collect(),
            None => vec![json!({"user": self.actor(), "role": "owner", "note": "this vault only: the project is not shared"})],
        };
        let processing = json!({
            "project": {"id": project_id, "name": project_name},
            "generated_at": rfc3339(now),
            "generated_by": self.actor(),
            "controller_purposes": if opts.purposes.is_empty() { json!(["(none entered: pass --purpose)"]) } else { json!(opts.purposes) },
            "categories_of_data": categories.iter().map(|(k, (n, b))| json!({"data_type": k, "items": n, "bytes": b})).collect::<Vec<_>>(),
            "retention_in_force": policy,
            "recipients": recipients,
            "technical_measures": {
                "encryption_at_rest": "AES-256-GCM, files in authenticated 1 MiB chunks, a data key per version",
                "key_hierarchy": "passphrase -> Argon2id -> key-encryption key -> vault root key -> project keys -> data keys; catalog in SQLCipher (AES-256)",
                "key_storage": "keys wrapped in the vault's key file; optionally the OS keyring on this device; a recovery key shown once",
                "audit_trail": "SHA-256 hash chain per device, re-verified when this pack was generated",
                "audit_verified": audit_ok,
                "transport": "TLS 1.3 to the lab tenant with a pinned certificate; the tenant stores ciphertext only",
                "shared_project_key_epoch": membership.as_ref().map(|m| m.epoch),
                "mfa": if opts.tenant_access.is_some() { json!("see access-evidence.json (from the tenant)") } else { json!("unknown: this pack was generated without the lab's tenant") },
            },
        });

        // Audit evidence: the project's slice, counted; the chain as verified.
        let mut by_action: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let (mut first, mut last): (Option<Value>, Option<Value>) = (None, None);
        let filter = crate::audit::AuditFilter {
            resource_prefix: Some(resources::project(project_id)),
            ..Default::default()
        };
        let events = self.audit_for_each(&filter, |ev| {
            *by_action
                .entry(ev.action.as_str().to_string())
                .or_default()
                .entry(ev.result.as_str().to_string())
                .or_default() += 1;
            let v = json!({"timestamp": rfc3339(ev.timestamp), "user": ev.user, "action": ev.action.as_str(), "device_id": ev.device_id, "seq": ev.seq, "hash": hex::encode(ev.hash)});
            if first.is_none() {
                first = Some(v.clone());
            }
            last = Some(v);
            Ok(())
        })?;
        let audit = json!({
            "chain_verified": audit_ok,
            "problem": audit_problem,
            "devices": reports.iter().map(|r| json!({
                "device_id": r.device_id, "events": r.events, "complete": r.complete, "gaps": r.gaps,
                "head_seq": r.head.as_ref().map(|h| h.seq),
                "signed_checkpoint_matched": r.checkpoint_matched,
            })).collect::<Vec<_>>(),
            "project_events": events,
            "first_event": first,
            "last_event": last,
            "counts_by_action_and_result": by_action,
            // Each one checkable offline: Ed25519 over docs/sync-protocol.md's anchor bytes.
            "signed_checkpoints": self.sync_anchors()?,
        });

        // Retention evidence.
        let erasures: Vec<Value> = items
            .iter()
            .filter(|i| i.state == ItemState::Erased)
            .map(|i| json!({"item_id": i.id, "area": i.area.to_string(), "path": i.path, "erased_at": i.erased_at.map(rfc3339), "reason": i.erase_reason}))
            .collect();
        let ids: std::collections::HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
        let holds: Vec<Value> = self
            .holds()?
            .into_iter()
            .filter(|h| h.target_id == project_id || ids.contains(h.target_id.as_str()))
            .map(|h| json!({"target": format!("{}/{}", h.target_kind, h.target_id), "reason": h.reason, "since": rfc3339(h.created_at), "by": h.created_by}))
            .collect();
        let timeline = self.retention_timeline(Some(project_id), 365, 50)?;
        let retention = json!({
            "erasures": erasures,
            "legal_holds": holds,
            "due_within_365_days": serde_json::to_value(&timeline).unwrap_or(Value::Null),
        });

        let access = json!({
            "vault": {"unlock": "passphrase (Argon2id), OS keyring if remembered on a device, or the recovery key", "auto_lock": "after idle time in the desktop app"},
            "project_members": recipients,
            "tenant": opts.tenant_access.clone().unwrap_or_else(|| json!("not included: generate the pack while signed in to the lab's tenant to add its access review, MFA status and sign-offs")),
        });

        let facts = Facts {
            audit_ok,
            audit_problem: audit_problem.clone(),
            shared: membership.is_some(),
            tenant: opts.tenant_access.is_some(),
        };
        let rows = controls(&facts);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for r in &rows {
            *counts.entry(r.status.to_string()).or_default() += 1;
        }
        let mut csv = String::from("framework,section,requirement,labvault,evidence,status\r\n");
        for r in &rows {
            let f = [
                r.framework,
                r.section,
                r.requirement,
                &r.labvault,
                r.evidence,
                r.status,
            ];
            csv.push_str(&f.iter().map(|x| csv_field(x)).collect::<Vec<_>>().join(","));
            csv.push_str("\r\n");
        }

        // index.html: the summary, every value escaped.
        let e = html_escape;
        let mut html = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Evidence pack: {}</title>\
             <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;color:#1c2a30}}\
             table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccd;padding:4px 8px;text-align:left;vertical-align:top}}\
             .failing{{background:#fde2e2}}.notcovered{{background:#f3f3f3}}</style>\
             <h1>Evidence pack: project {}</h1><p>Generated {} by {} from the LabVault vault; every file is listed with its SHA-256 in manifest.json and SHA256SUMS.</p>",
            e(project_name), e(project_name), e(&rfc3339(now)), e(self.actor())
        );
        html.push_str(&format!(
            "<h2>Audit trail</h2><p><strong>{}</strong> {} events on this project; first {}, last {}.</p>",
            if audit_ok { "The hash chain verifies." } else { "The hash chain does NOT verify." },
            events,
            e(first.as_ref().and_then(|v| v["timestamp"].as_str()).unwrap_or("-")),
            e(last.as_ref().and_then(|v| v["timestamp"].as_str()).unwrap_or("-")),
        ));
        if let Some(pr) = &audit_problem {
            html.push_str(&format!("<p class=\"failing\">{}</p>", e(pr)));
        }
        html.push_str(&format!(
            "<h2>Retention</h2><p>{} erasure(s), {} legal hold(s), {} step(s) due within a year.</p>",
            retention["erasures"].as_array().map_or(0, Vec::len),
            retention["legal_holds"].as_array().map_or(0, Vec::len),
            timeline.steps.len(),
        ));
        html.push_str("<h2>Access</h2>");
        match &opts.tenant_access {
            None => html.push_str(
                "<p>The lab's access review is not included: the pack was generated without the tenant.</p>",
            ),
            Some(t) => {
                let latest = &t["latest_sign_off"];
                if latest.is_null() {
                    html.push_str("<p class=\"failing\">No access review has been signed off in the lab.</p>");
                } else {
                    let changes = latest["changes"].as_array().map_or(0, Vec::len);
                    html.push_str(&format!(
                        "<p>Latest access review signed off {} by {}, {} change(s); {} sign-off(s) in the lab's audit trail.</p>",
                        e(latest["at"].as_str().unwrap_or("")),
                        e(latest["by"].as_str().unwrap_or("")),
                        changes,
                        t["sign_offs"].as_array().map_or(0, Vec::len)
                    ));
                }
                let no_mfa = t["admins_without_mfa"].as_array().map_or(0, Vec::len);
                let stale = t["stale_access"].as_array().map_or(0, Vec::len);
                html.push_str(&format!(
                    "<p>{no_mfa} admin(s) without MFA; {stale} stale access grant(s).</p>"
                ));
            }
        }
        html.push_str("<h2>Controls</h2><table><tr><th>Framework</th><th>Section</th><th>Requirement</th><th>LabVault</th><th>Evidence</th><th>Status</th></tr>");
        for r in &rows {
            html.push_str(&format!(
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.status.replace(' ', ""),
                e(r.framework), e(r.section), e(r.requirement), e(&r.labvault), e(r.evidence), e(r.status)
            ));
        }
        html.push_str("</table></html>\n");

        // Write under a hidden name, then rename.
        let staging = Staging::beside(dest, "evidence pack")?;
        let dir = staging.path();
        let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("index.html", html.into_bytes()),
            ("processing-record.json", pretty(&processing)),
            ("audit-evidence.json", pretty(&audit)),
            ("retention-evidence.json", pretty(&retention)),
            ("access-evidence.json", pretty(&access)),
            (
                "controls.json",
                serde_json::to_vec_pretty(&rows).unwrap_or_default(),
            ),
            ("controls.csv", csv.into_bytes()),
        ];
        let write = |name: &str, bytes: &[u8]| {
            fs::write(dir.join(name), bytes)
                .map_err(|e| Error::io_path("writing", &dir.join(name), e))
        };
        let mut manifest = Vec::new();
        let mut sums = String::new();
        for (name, bytes) in &files {
            let sha = hex::encode(Sha256::digest(bytes));
            write(name, bytes)?;
            sums.push_str(&format!("{sha}  {name}\n"));
            manifest.push(json!({"name": name, "size": bytes.len(), "sha256": sha}));
        }
        write("manifest.json", &pretty(&json!(manifest)))?;
        write("SHA256SUMS", sums.as_bytes())?;
        staging.commit(dest)?;
        let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
        names.push("manifest.json".into());
        names.push("SHA256SUMS".into());
        Ok(EvidenceSummary {
            path: dest.to_path_buf(),
            files: names,
            audit_ok,
            controls: counts,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{KdfParams, Passphrase, Vault, VaultOptions};

    fn vault(dir: &std::path::Path) -> Vault {
        let opts = VaultOptions {
            kdf: Some(KdfParams::FLOOR),
            ..Default::default()
        };
        Vault::create(
            dir,
            &Passphrase::new("evidence pack passphrase".into()),
            opts,
        )
        .unwrap()
        .0
    }

    /// A pack of a vault whose audit chain was tampered with says so: the audit controls are
    /// `failing`, the summary names the break, and every file is in the manifest.
    #[test]
    fn a_broken_chain_is_reported_truthfully_and_every_file_is_hashed() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(&tmp.path().join("v"));
        v.create_project("p").unwrap();
        let intact = v
            .evidence_pack("p", &tmp.path().join("ok"), &Default::default())
            .unwrap();
        assert!(intact.audit_ok);
        assert_eq!(intact.controls.get("failing"), None);
        assert_eq!(intact.controls["not covered"], 3, "{:?}", intact.controls);

        let conn = v.raw_connection_for_tests().unwrap();
        // Someone with the key rewrites history behind the append-only trigger's back.
        conn.execute_batch(
            "DROP TRIGGER audit_events_no_update;
             UPDATE audit_events SET detail = 'rewritten' WHERE seq = 2;",
        )
        .unwrap();
        drop(conn);
        let dest = tmp.path().join("broken");
        let s = v.evidence_pack("p", &dest, &Default::default()).unwrap();
        assert!(!s.audit_ok);
        assert_eq!(s.controls["failing"], 2, "{:?}", s.controls);
        let html = std::fs::read_to_string(dest.join("index.html")).unwrap();
        assert!(html.contains("does NOT verify"), "{html}");
        let sums = std::fs::read_to_string(dest.join("SHA256SUMS")).unwrap();
        for name in [
            "index.html",
            "controls.csv",
            "audit-evidence.json",
            "retention-evidence.json",
        ] {
            let bytes = std::fs::read(dest.join(name)).unwrap();
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            assert!(sums.contains(&format!("{sha}  {name}")), "{name}: {sums}");
        }
        assert!(
            v.evidence_pack("p", &dest, &Default::default()).is_err(),
            "an existing pack is never overwritten"
        );
    }
}
