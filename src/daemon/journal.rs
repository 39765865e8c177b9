//! The job journal: one small JSON file per job under `state_dir/journal/`, rewritten atomically at every state
//! change, so that after a crash or SIGKILL the daemon knows which job was running and at what stage, and which
//! bundle (by manifest checksum) each model's last job came from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// queued → calibrating → searching → building → verifying → publishing → live | failed | rolled-back; a job can
/// also end superseded (a newer bundle for its model arrived).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    Calibrating,
    Searching,
    Building,
    Verifying,
    Publishing,
    Live,
    Failed,
    RolledBack,
    Superseded,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Calibrating => "calibrating",
            JobState::Searching => "searching",
            JobState::Building => "building",
            JobState::Verifying => "verifying",
            JobState::Publishing => "publishing",
            JobState::Live => "live",
            JobState::Failed => "failed",
            JobState::RolledBack => "rolled-back",
            JobState::Superseded => "superseded",
        }
    }

    /// Whether the job is over (anything else is resumed after a restart).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Live | JobState::Failed | JobState::RolledBack | JobState::Superseded)
    }
}

/// Why a job exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobReason {
    /// A new or re-sealed bundle in the inbox.
    Bundle,
    /// The device fingerprint changed under a live engine: rebuild with the live version's plan and scales.
    Firmware,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub model: String,
    pub reason: JobReason,
    /// sha256 of the bundle's `bundle.toml`.
    pub bundle_sha256: String,
    /// The daemon's own copy of the bundle the job builds from.
    pub bundle: PathBuf,
    /// For firmware rebuilds: the live version's plan and scales.
    pub plan: Option<PathBuf>,
    pub scales: Option<PathBuf>,
    pub state: JobState,
    /// e.g. `final`, `fallback 1`, `profile all-INT8`.
    pub detail: String,
    pub version: Option<u64>,
    pub failure: Option<String>,
    /// How many times this job was started (a restart after a crash resumes it).
    pub attempts: u32,
    pub accepted_at: String,
    pub updated_at: String,
}

pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn open(state_dir: &Path) -> std::io::Result<Journal> {
        let dir = state_dir.join("journal");
        std::fs::create_dir_all(&dir)?;
        Ok(Journal { dir })
    }

    pub fn write(&self, record: &JobRecord) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(record).expect("plain data serializes") + "\n";
        crate::model::write_atomically(&self.dir.join(format!("{}.json", record.id)), text.as_bytes())
    }

    /// Every readable record, oldest accepted first; unreadable files are returned by name for the log.
    pub fn load(&self) -> std::io::Result<(Vec<JobRecord>, Vec<String>)> {
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| serde_json::from_str::<JobRecord>(&t).map_err(|e| e.to_string())) {
                Ok(record) => records.push(record),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        records.sort_by(|a, b| a.accepted_at.cmp(&b.accepted_at).then_with(|| a.id.cmp(&b.id)));
        Ok((records, problems))
    }

    /// Removes the records of ended jobs beyond the newest `keep` per model.
    pub fn prune(&self, keep: usize) -> std::io::Result<()> {
        let (records, _) = self.load()?;
        let mut by_model: std::collections::BTreeMap<&str, Vec<&JobRecord>> = Default::default();
        for r in &records {
            by_model.entry(&r.model).or_default().push(r);
        }
        for list in by_model.values() {
            let excess = list.len().saturating_sub(keep);
            for r in list.iter().take(excess).filter(|r| r.state.is_terminal()) {
                let _ = std::fs::remove_file(self.dir.join(format!("{}.json", r.id)));
            }
        }
        Ok(())
    }
}

/// The newest record per model (by acceptance time).
pub fn latest_per_model(records: &[JobRecord]) -> std::collections::BTreeMap<String, JobRecord> {
    let mut latest = std::collections::BTreeMap::new();
    for r in records {
        latest.insert(r.model.clone(), r.clone());
    }
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, model: &str, at: &str, state: JobState) -> JobRecord {
        JobRecord {
            id: id.into(),
            model: model.into(),
            reason: JobReason::Bundle,
            bundle_sha256: "s".into(),
            bundle: PathBuf::from("/b"),
            plan: None,
            scales: None,
            state,
            detail: String::new(),
            version: None,
            failure: None,
            attempts: 1,
            accepted_at: at.into(),
            updated_at: at.into(),
        }
    }

    #[test]
    fn records_round_trip_and_prune_keeps_the_newest_and_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.write(&record("a", "m", "2026-01-01T00:00:01Z", JobState::Live)).unwrap();
        journal.write(&record("b", "m", "2026-01-01T00:00:02Z", JobState::Failed)).unwrap();
        journal.write(&record("c", "m", "2026-01-01T00:00:03Z", JobState::Building)).unwrap();
        journal.write(&record("d", "n", "2026-01-01T00:00:04Z", JobState::Live)).unwrap();
        std::fs::write(dir.path().join("journal/broken.json"), "{").unwrap();
        let (records, problems) = journal.load().unwrap();
        assert_eq!(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(problems.len(), 1);
        let latest = latest_per_model(&records);
        assert_eq!(latest["m"].id, "c");
        assert_eq!(latest["m"].state, JobState::Building);
        journal.prune(1).unwrap();
        let (records, _) = journal.load().unwrap();
        assert_eq!(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["c", "d"]);
    }
}
