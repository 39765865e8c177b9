use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::error::{Diagnose, Failure, Fault};

/// The files a builder leaves in a version (the store does not care which; the tests check they travel whole).
const FILES: [&str; 6] = ["engine.plan", "plan.toml", "calib.cache", "verify.json", "build.log", "fingerprint.json"];

fn model(name: &str) -> ModelName {
    ModelName::new(name).unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n).unwrap()
}

fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap().0
}

/// Every file of FILES says which `tag` it belongs to; verify.json and fingerprint.json are JSON.
fn write_files(dir: &Path, tag: &str) {
    for name in FILES {
        let text = match name {
            "verify.json" => format!(r#"{{"verdict": "pass", "tag": "{tag}"}}"#),
            "fingerprint.json" => format!(r#"{{"key": "orin-trt10", "tag": "{tag}"}}"#),
            _ => format!("{name} of {tag}"),
        };
        fs::write(dir.join(name), text).unwrap();
    }
    fs::create_dir(dir.join("profiles")).unwrap();
    fs::write(dir.join("profiles/b1.json"), format!("profile of {tag}")).unwrap();
}

fn commit(store: &Store, m: &ModelName, tag: &str) -> Version {
    let staging = store.stage(m).unwrap();
    write_files(staging.path(), tag);
    store.commit(staging).unwrap()
}

/// The tag every file under `dir` carries; panics when a file is missing or two files disagree.
fn tag_of(dir: &Path) -> String {
    let mut tags = Vec::new();
    for name in FILES {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()));
        let tag = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(json) => json["tag"].as_str().unwrap().to_owned(),
            Err(_) => text.rsplit(" of ").next().unwrap().to_owned(),
        };
        tags.push(tag);
    }
    tags.push(fs::read_to_string(dir.join("profiles/b1.json")).unwrap().rsplit(" of ").next().unwrap().to_owned());
    assert!(tags.windows(2).all(|w| w[0] == w[1]), "{}: files of different versions: {tags:?}", dir.display());
    tags.pop().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn model_names_are_validated() {
    for good in ["det", "det32", "yolo-v8n", "rec_ppocr.v4", "A1", "9lives"] {
        assert_eq!(ModelName::new(good).unwrap().as_str(), good);
    }
    for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "x..y", "-flag", "_x", "has space", "ümlaut", "a\0b"] {
        let err = ModelName::new(bad).unwrap_err();
        assert_eq!(err.fault(), Fault::Input, "{bad:?}");
        assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        assert!(err.hint().is_some());
    }
    assert!(ModelName::new(&"a".repeat(MODEL_NAME_MAX)).is_ok());
    assert!(ModelName::new(&"a".repeat(MODEL_NAME_MAX + 1)).is_err());
    assert_eq!(ModelName::from_bundle_dir(Path::new("/inbox/det/")).unwrap().as_str(), "det");
    assert!(ModelName::from_bundle_dir(Path::new("/inbox/..")).is_err());
}

#[test]
fn version_folder_names_are_canonical_numbers() {
    assert_eq!(Version::from_dir_name("1"), Some(v(1)));
    assert_eq!(Version::from_dir_name("120"), Some(v(120)));
    for bad in ["", "0", "007", "+7", "-1", "1a", " 1", ".staging-1", "99999999999999999999999"] {
        assert_eq!(Version::from_dir_name(bad), None, "{bad:?}");
    }
}

#[test]
fn stage_commit_switch_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, recovery) = Store::open(tmp.path()).unwrap();
    assert!(recovery.is_empty(), "{recovery:?}");
    let det = model("det");
    assert_eq!(store.models().unwrap(), Vec::<ModelName>::new());
    assert_eq!(store.live(&det).unwrap(), None);

    let v1 = commit(&store, &det, "a");
    assert_eq!(v1, v(1));
    // Committed is not live.
    assert_eq!(store.live(&det).unwrap(), None);
    assert!(!store.live_path(&det).exists());
    assert_eq!(store.switch(&det, v1).unwrap(), Switch { live: v1, previous: None });
    assert_eq!(fs::read_link(store.live_path(&det)).unwrap(), Path::new("../engines/det/1"));
    assert_eq!(tag_of(&store.live_path(&det)), "a");

    let v2 = commit(&store, &det, "b");
    assert_eq!(v2, v(2));
    assert_eq!(store.switch(&det, v2).unwrap(), Switch { live: v2, previous: Some(v1) });
    assert_eq!(tag_of(&store.live_path(&det)), "b");
    assert_eq!(store.previous(&det).unwrap(), Some(v1));
    // Switching to what is live changes nothing.
    assert_eq!(store.switch(&det, v2).unwrap(), Switch { live: v2, previous: Some(v2) });
    assert_eq!(store.history(&det).unwrap(), [v1, v2]);

    assert_eq!(store.rollback(&det).unwrap(), Switch { live: v1, previous: Some(v2) });
    assert_eq!(store.live(&det).unwrap(), Some(v1));
    assert_eq!(tag_of(&store.live_path(&det)), "a");
    assert_eq!(store.history(&det).unwrap(), [v1]);
    let err = store.rollback(&det).unwrap_err();
    assert!(matches!(err, StoreError::NoPrevious { .. }), "{err}");
    assert_eq!(err.fault(), Fault::Input);

    assert_eq!(store.versions(&det).unwrap(), [v1, v2]);
    assert_eq!(store.models().unwrap(), vec![det.clone()]);
    assert_eq!(names(&tmp.path().join("engines/det")), ["1", "2", "history", "next"]);
    assert_eq!(names(&tmp.path().join("live")), ["det"]);

    let err = store.switch(&det, v(7)).unwrap_err();
    assert!(matches!(err, StoreError::NoSuchVersion { .. }), "{err}");
    assert!(err.to_string().contains("engines/det/7"), "{err}");
    let err = store.rollback(&model("cls")).unwrap_err();
    assert!(matches!(err, StoreError::NothingLive { .. }), "{err}");
}

#[test]
fn rollback_walks_back_through_the_history_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let det = model("det");
    {
        let store = open(tmp.path());
        for tag in ["a", "b", "c"] {
            let version = commit(&store, &det, tag);
            store.switch(&det, version).unwrap();
        }
        // Re-publishing an old version is a new history entry; rolling back from it returns to 3.
        store.switch(&det, v(1)).unwrap();
        assert_eq!(store.history(&det).unwrap(), [v(1), v(2), v(3), v(1)]);
    }
    let (store, recovery) = Store::open(tmp.path()).unwrap();
    assert!(recovery.is_empty(), "{recovery:?}");
    assert_eq!(store.rollback(&det).unwrap().live, v(3));
    assert_eq!(store.rollback(&det).unwrap().live, v(2));
    drop(store);
    let store = open(tmp.path());
    assert_eq!(store.rollback(&det).unwrap(), Switch { live: v(1), previous: Some(v(2)) });
    assert!(store.rollback(&det).is_err());
}

#[test]
fn numbers_are_never_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let det = model("det");
    let store = open(tmp.path());
    for n in 1..=5 {
        assert_eq!(commit(&store, &det, &n.to_string()), v(n));
    }
    store.switch(&det, v(1)).unwrap();
    store.switch(&det, v(2)).unwrap();
    assert_eq!(store.prune(&det, 0).unwrap(), [v(3), v(4), v(5)]);
    assert_eq!(commit(&store, &det, "6"), v(6));
    // A dropped staging folder and a failed commit spend no number... (the counter is written under the lock,
    // right before the rename) ...
    drop(store.stage(&det).unwrap());
    assert!(store.commit(store.stage(&det).unwrap()).is_err());
    assert_eq!(commit(&store, &det, "7"), v(7));
    store.switch(&det, v(7)).unwrap();
    assert_eq!(store.prune(&det, 0).unwrap(), [v(1), v(6)]);
    drop(store);
    // ...and a restart does not forget the counter, even with the newest versions gone.
    let store = open(tmp.path());
    assert_eq!(store.versions(&det).unwrap(), [v(2), v(7)]);
    assert_eq!(commit(&store, &det, "8"), v(8));

    // Without the counter (removed by hand) the highest stored version still bounds the next one.
    fs::remove_file(tmp.path().join("engines/det/next")).unwrap();
    assert_eq!(commit(&store, &det, "9"), v(9));
    fs::write(tmp.path().join("engines/det/next"), "3\n").unwrap();
    assert_eq!(commit(&store, &det, "10"), v(10));
    fs::write(tmp.path().join("engines/det/next"), "banana\n").unwrap();
    let staging = store.stage(&det).unwrap();
    write_files(staging.path(), "11");
    let err = store.commit(staging).unwrap_err();
    assert!(err.to_string().contains("banana"), "{err}");
}

#[test]
fn concurrent_commits_get_distinct_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let (det, cls) = (model("det"), model("cls"));
    let versions: Vec<(ModelName, Version)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (store, m) = (&store, if i % 2 == 0 { det.clone() } else { cls.clone() });
                s.spawn(move || (m.clone(), commit(store, &m, &i.to_string())))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for m in [&det, &cls] {
        let mut mine: Vec<Version> = versions.iter().filter(|(n, _)| n == m).map(|(_, v)| *v).collect();
        mine.sort();
        assert_eq!(mine, [v(1), v(2), v(3), v(4)]);
        assert_eq!(store.versions(m).unwrap(), mine);
    }
}

#[test]
fn dropped_staging_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let det = model("det");
    let staging = store.stage(&det).unwrap();
    write_files(staging.path(), "x");
    let path = staging.path().to_owned();
    assert!(path.file_name().unwrap().to_str().unwrap().starts_with(".staging-"));
    drop(staging);
    assert!(!path.exists());
    assert_eq!(names(&tmp.path().join("engines/det")), Vec::<String>::new());
    assert_eq!(store.versions(&det).unwrap(), []);
}

#[test]
fn commit_refuses_links_and_empty_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let det = model("det");

    let staging = store.stage(&det).unwrap();
    let path = staging.path().to_owned();
    let err = store.commit(staging).unwrap_err();
    assert!(matches!(err, StoreError::EmptyStaging { .. }), "{err}");
    assert!(!path.exists(), "a refused staging folder is removed");

    let staging = store.stage(&det).unwrap();
    write_files(staging.path(), "x");
    symlink("/etc/passwd", staging.path().join("profiles/extra")).unwrap();
    let err = store.commit(staging).unwrap_err();
    assert!(matches!(err, StoreError::NotRegular { .. }), "{err}");
    assert!(err.to_string().contains("profiles/extra: a symbolic link"), "{err}");
    assert_eq!(err.fault(), Fault::Environment);
    assert_eq!(store.versions(&det).unwrap(), []);

    // A staging folder from another store is not taken.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(other_dir.path());
    let staging = other.stage(&det).unwrap();
    write_files(staging.path(), "y");
    let err = store.commit(staging).unwrap_err();
    assert!(matches!(err, StoreError::ForeignStaging { .. }), "{err}");
}

#[test]
fn prune_keeps_newest_live_and_previous() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let det = model("det");
    for n in 1..=8 {
        commit(&store, &det, &n.to_string());
    }
    // Live 2, previous 1: both old, both kept whatever keep_versions says.
    store.switch(&det, v(1)).unwrap();
    store.switch(&det, v(2)).unwrap();
    assert_eq!(store.prune(&det, 3).unwrap(), [v(3), v(4), v(5)]);
    assert_eq!(store.versions(&det).unwrap(), [v(1), v(2), v(6), v(7), v(8)]);
    assert_eq!(store.prune(&det, 0).unwrap(), [v(6), v(7), v(8)]);
    assert_eq!(store.versions(&det).unwrap(), [v(1), v(2)]);
    assert_eq!(store.prune(&det, 0).unwrap(), []);
    assert_eq!(tag_of(&store.live_path(&det)), "2");
    assert_eq!(store.rollback(&det).unwrap().live, v(1));
    // No trash left behind.
    assert_eq!(names(&tmp.path().join("engines/det")), ["1", "2", "history", "next"]);

    // The rollback target is the newest *stored* earlier entry: history 1, 9, 10 with 9 pruned away by hand
    // (a prune would have kept it) still rolls back to 1.
    let v9 = commit(&store, &det, "9");
    let v10 = commit(&store, &det, "10");
    store.switch(&det, v9).unwrap();
    store.switch(&det, v10).unwrap();
    fs::remove_dir_all(store.version_path(&det, v9)).unwrap();
    assert_eq!(store.previous(&det).unwrap(), Some(v(1)));
    assert_eq!(store.prune(&det, 0).unwrap(), [v(2)]);
    assert_eq!(store.rollback(&det).unwrap(), Switch { live: v(1), previous: Some(v10) });
}

#[test]
fn open_removes_leftovers_and_never_touches_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let det = model("det");
    {
        let store = open(tmp.path());
        let v1 = commit(&store, &det, "a");
        commit(&store, &det, "b");
        store.switch(&det, v1).unwrap();
        // A crash: a build half-written, a prune half-done, a switch between its link and its rename, a counter
        // being written. std::mem::forget stands for the process dying before Drop runs.
        let staging = store.stage(&det).unwrap();
        fs::write(staging.path().join("engine.plan"), "half").unwrap();
        std::mem::forget(staging);
        fs::create_dir_all(tmp.path().join("engines/det/.trash-2-123-abc-0/profiles")).unwrap();
        symlink("../engines/det/2", tmp.path().join("live/.det.tmp-123-abc-1")).unwrap();
        fs::write(tmp.path().join("engines/det/.next.tmp-123"), "4").unwrap();
        // Not the store's: left alone, reported.
        fs::write(tmp.path().join("engines/det/README"), "notes").unwrap();
        fs::create_dir(tmp.path().join("engines/.cache")).unwrap();
        fs::write(tmp.path().join("live/.keep"), "").unwrap();
    }
    let (store, recovery) = Store::open(tmp.path()).unwrap();
    let removed: Vec<&Path> = recovery.removed().collect();
    assert_eq!(removed.len(), 4, "{recovery:?}");
    let whats: Vec<Leftover> = recovery
        .items
        .iter()
        .filter_map(|r| match r {
            Recovered::Removed { what, .. } => Some(*what),
            _ => None,
        })
        .collect();
    for what in [Leftover::Staging, Leftover::Trash, Leftover::TempLink, Leftover::TempFile] {
        assert!(whats.contains(&what), "{what:?} in {recovery:?}");
    }
    let ignored: Vec<String> = recovery
        .items
        .iter()
        .filter_map(|r| match r {
            Recovered::Ignored { path, .. } => Some(path.file_name().unwrap().to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(ignored.len(), 3, "{recovery:?}");
    for line in &recovery.items {
        assert!(!line.to_string().is_empty());
    }
    assert_eq!(names(&tmp.path().join("engines/det")), ["1", "2", "README", "history", "next"]);
    assert_eq!(names(&tmp.path().join("live")), [".keep", "det"]);
    assert_eq!(store.live(&det).unwrap(), Some(v(1)));
    assert_eq!(tag_of(&store.version_path(&det, v(1))), "a");
    assert_eq!(tag_of(&store.version_path(&det, v(2))), "b");
    assert_eq!(commit(&store, &det, "c"), v(3));
    drop(store);
    let (_, again) = Store::open(tmp.path()).unwrap();
    assert_eq!(again.removed().count(), 0, "{again:?}");
}

#[test]
fn interrupted_switch_and_rollback_read_consistently() {
    let tmp = tempfile::tempdir().unwrap();
    let det = model("det");
    let history_file = tmp.path().join("engines/det/history");
    {
        let store = open(tmp.path());
        for tag in ["a", "b", "c"] {
            commit(&store, &det, tag);
        }
        store.switch(&det, v(1)).unwrap();
        store.switch(&det, v(2)).unwrap();
    }
    // A switch to 3 that wrote its history but died before the link moved: not happened.
    let text = fs::read_to_string(&history_file).unwrap();
    fs::write(&history_file, format!("{text}3\n")).unwrap();
    let (store, recovery) = Store::open(tmp.path()).unwrap();
    assert_eq!(recovery.items, [Recovered::HistoryRepaired { model: det.clone(), live: Some(v(2)) }]);
    assert_eq!(store.live(&det).unwrap(), Some(v(2)));
    assert_eq!(store.history(&det).unwrap(), [v(1), v(2)]);
    assert_eq!(history::parse(&fs::read_to_string(&history_file).unwrap()).unwrap(), [v(1), v(2)]);

    // A rollback that moved the link to 1 but died before writing the history: completed.
    symlink("../engines/det/1", tmp.path().join("live/.det.tmp-x")).unwrap();
    fs::rename(tmp.path().join("live/.det.tmp-x"), tmp.path().join("live/det")).unwrap();
    assert_eq!(store.history(&det).unwrap(), [v(1)], "reads reconcile before any reopen");
    drop(store);
    let (store, recovery) = Store::open(tmp.path()).unwrap();
    assert_eq!(recovery.items, [Recovered::HistoryRepaired { model: det.clone(), live: Some(v(1)) }]);
    assert!(matches!(store.rollback(&det), Err(StoreError::NoPrevious { .. })));
    store.switch(&det, v(3)).unwrap();
    assert_eq!(store.rollback(&det).unwrap().live, v(1));
}

#[test]
fn reader_never_sees_a_missing_link_or_a_partial_version() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let det = model("det");
    let mut tags = BTreeMap::new();
    for n in 1..=8u64 {
        tags.insert(commit(&store, &det, &format!("t{n}")), format!("t{n}"));
    }
    store.switch(&det, v(1)).unwrap();
    let live = store.live_path(&det);
    let live_dir = tmp.path().join("live");
    let done = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                // What an application does: resolve the link once, then read the version's files through it.
                let target = fs::read_link(&live).expect("live/det must always exist");
                let dir: PathBuf = live_dir.join(&target);
                let version = Version::from_dir_name(target.file_name().unwrap().to_str().unwrap()).unwrap();
                assert_eq!(tag_of(&dir), tags[&version]);
                // And one that opens through the link directly.
                let plan = fs::read_to_string(live.join("engine.plan")).expect("live/det/engine.plan must open");
                assert!(plan.starts_with("engine.plan of t"), "{plan}");
                reads += 1;
            }
            reads
        });
        for i in 0..200u64 {
            let next = v(i % 8 + 1);
            if store.live(&det).unwrap() != Some(next) {
                store.switch(&det, next).unwrap();
            }
            if i % 50 == 49 {
                store.rollback(&det).unwrap();
            }
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(reads > 0);
    assert!(store.history(&det).unwrap().len() <= history::MAX_LEN);
    // Only the link, no temporary one left.
    assert_eq!(names(&live_dir), ["det"]);
}

#[test]
fn read_only_state_dir_is_an_environment_error() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o555)).unwrap();
    let result = std::thread::spawn({
        let state = state.clone();
        move || {
            // Root writes anywhere; a file-system uid without privileges (per thread on Linux, and this thread
            // ends here) stands for the unprivileged daemon, or a read-only mount.
            if unsafe { libc::geteuid() } == 0 {
                unsafe { libc::setfsuid(65534) };
            }
            Store::open(&state).map(|_| ())
        }
    })
    .join()
    .unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.fault(), Fault::Environment);
    let failure = Failure::from(err).to_string();
    assert!(
        failure.contains(&format!("error: {}: cannot create folder", state.join("engines").display())),
        "{failure}"
    );
    assert!(failure.contains("caused by: Permission denied"), "{failure}");
    assert!(failure.contains("hint: state_dir (and the Triton repository) must be writable"), "{failure}");
}

#[test]
fn one_process_owns_a_state_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { holder: Some(pid), .. } if pid == std::process::id()), "{err}");
    assert_eq!(err.fault(), Fault::Environment);
    assert!(err.to_string().contains("in use by another precisiond process"), "{err}");
    drop(store);
    open(tmp.path());
}

#[test]
fn version_metadata_is_read_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let det = model("det");
    let v1 = commit(&store, &det, "a");
    assert_eq!(store.verify_json(&det, v1).unwrap().unwrap()["verdict"], "pass");
    assert_eq!(store.fingerprint_json(&det, v1).unwrap().unwrap()["key"], "orin-trt10");

    let staging = store.stage(&det).unwrap();
    fs::write(staging.path().join("engine.plan"), "p").unwrap();
    fs::write(staging.path().join("verify.json"), "{not json").unwrap();
    let v2 = store.commit(staging).unwrap();
    assert_eq!(store.fingerprint_json(&det, v2).unwrap(), None);
    let err = store.verify_json(&det, v2).unwrap_err();
    assert!(err.to_string().contains("engines/det/2/verify.json: not valid JSON"), "{err}");
    assert!(matches!(store.verify_json(&det, v(5)), Err(StoreError::NoSuchVersion { .. })));
}

#[test]
fn a_link_changed_by_hand_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let det = model("det");
    {
        let store = open(tmp.path());
        commit(&store, &det, "a");
    }
    symlink("/opt/models/det.plan", tmp.path().join("live/det")).unwrap();
    let (store, recovery) = Store::open(tmp.path()).unwrap();
    assert!(
        matches!(&recovery.items[..], [Recovered::Ignored { why, .. }] if why.contains("/opt/models/det.plan")),
        "{recovery:?}"
    );
    let err = store.switch(&det, v(1)).unwrap_err();
    assert!(matches!(err, StoreError::BadLink { .. }), "{err}");
    assert!(err.hint().unwrap().contains("../engines/det/<number>"));
    // Left as it was.
    assert_eq!(fs::read_link(tmp.path().join("live/det")).unwrap(), Path::new("/opt/models/det.plan"));
}

#[test]
fn a_file_where_a_folder_belongs_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("live"), "").unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert_eq!(err.fault(), Fault::Environment);
    assert_eq!(
        err.to_string(),
        format!("{}: a file, where precisiond keeps a folder", tmp.path().join("live").display())
    );
}
