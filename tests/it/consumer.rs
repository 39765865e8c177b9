//! The example application (examples/live_consumer.rs) serving `live/<model>` of a real store while the store
//! switches it under the application's feet: no request fails, every answer is whole and of one version (its logits
//! are that version's), and a version that does not load leaves the old one serving.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use precisiond::exec::Executor;
use precisiond::inputs::npy::read_npy;
use precisiond::model::{Model, weights};
use precisiond::store::{ModelName, Store, Version};
use serde_json::Value;

use crate::support;

const MODEL: &str = "digits";
const SHAPE: [usize; 4] = [1, 1, 8, 8];
const SAMPLES: usize = 4;
/// How soon after a switch the consumer must answer with the new version (it reacts to inotify; the load and
/// compile of the digits CNN take milliseconds).
const PICKUP: Duration = Duration::from_secs(1);
/// Between one client's requests. Back to back, three clients and the consumer's threads take every core of a small
/// machine and the store's fsyncs starve: switches come seconds late and the test takes several times longer (it
/// still passes). With the pause, over two thousand requests a second still straddle the switches.
const PAUSE: Duration = Duration::from_millis(1);

/// The digits CNN as fetched.
fn digits() -> Vec<u8> {
    std::fs::read(support::model("digits_cnn")).unwrap()
}

/// The digits CNN with 10 added to the bias of its last layer: every logit differs from the original's by 10, so an
/// answer's logits tell which version computed them.
fn digits_shifted() -> Vec<u8> {
    let path = support::model("digits_cnn");
    let mut proto = Model::load(&path).unwrap().into_proto();
    let graph = proto.graph.as_mut().unwrap();
    let fc2 = graph.node.iter().find(|n| n.name() == "fc2").expect("the digits CNN has a node fc2");
    let bias = fc2.input[2].clone();
    let tensor = graph.initializer.iter_mut().find(|t| t.name() == bias).expect("fc2's bias is an initializer");
    tensor.float_data = weights::to_f32(tensor).unwrap().iter().map(|v| v + 10.0).collect();
    tensor.raw_data = None;
    Model::from_proto(proto, &path).unwrap().to_bytes()
}

/// Commits a version whose `model.onnx` holds `bytes`.
fn publish(store: &Store, model: &ModelName, bytes: &[u8]) -> Version {
    let staging = store.stage(model).unwrap();
    support::write(&staging.path().join("model.onnx"), bytes);
    store.commit(staging).unwrap()
}

/// The first held-out digits, one request body's worth each.
fn samples() -> Vec<Vec<f32>> {
    let x = read_npy(&support::asset("data/digits_test_x.npy")).unwrap();
    let per: usize = SHAPE.iter().product();
    x.as_f32().unwrap().chunks_exact(per).take(SAMPLES).map(<[f32]>::to_vec).collect()
}

/// Per version (as the consumer names it: the folder's name), the logits of each sample, from our own executor.
type References = BTreeMap<String, Vec<Vec<f32>>>;

fn references(versions: &[(Version, &[u8])], samples: &[Vec<f32>]) -> References {
    versions
        .iter()
        .map(|(version, bytes)| {
            let model = Model::from_bytes(bytes.to_vec().into(), Path::new("model.onnx")).unwrap();
            let executor = Executor::new(&model, &[("x".into(), SHAPE.to_vec())]).unwrap();
            let logits = samples
                .iter()
                .map(|s| {
                    let input = precisiond::tensor::Tensor::from_f32(SHAPE.to_vec(), s.clone()).unwrap();
                    executor.run(&[input]).unwrap()[0].as_f32().unwrap().to_vec()
                })
                .collect();
            (version.to_string(), logits)
        })
        .collect()
}

/// The running example, killed when dropped.
struct Consumer {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Consumer {
    fn start(live: &Path) -> Consumer {
        let mut child = Command::new(support::live_consumer())
            .arg("--live")
            .arg(live)
            .args(["--listen", "127.0.0.1:0", "--input", "x=1,1,8,8"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("live_consumer starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        let reader = thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut first = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut first);
        let Some(addr) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            panic!("live_consumer did not start: {first:?}\n{}", log.lock().unwrap());
        };
        Consumer { addr: addr.to_owned(), child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        // A hang fails the request instead of the whole test run.
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Value, String> {
        let head = format!("{method} {path} HTTP/1.1\r\nHost: consumer\r\nContent-Length: {}\r\n\r\n", body.len());
        let io = |e: io::Error| format!("{method} {path}: {e}");
        self.writer.write_all(head.as_bytes()).map_err(io)?;
        self.writer.write_all(body).map_err(io)?;
        let mut status = String::new();
        self.reader.read_line(&mut status).map_err(io)?;
        let mut length = None;
        loop {
            let mut header = String::new();
            if self.reader.read_line(&mut header).map_err(io)? == 0 {
                return Err(format!("{method} {path}: connection closed inside the headers"));
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut answer = vec![0; length.ok_or_else(|| format!("{method} {path}: no Content-Length"))?];
        self.reader.read_exact(&mut answer).map_err(io)?;
        let answer = String::from_utf8_lossy(&answer);
        if !status.starts_with("HTTP/1.1 200 ") {
            return Err(format!("{method} {path}: {} {answer}", status.trim_end()));
        }
        serde_json::from_str(&answer).map_err(|e| format!("{method} {path}: {e}: {answer}"))
    }

    fn version(&mut self) -> Result<String, String> {
        let answer = self.request("GET", "/version", b"")?;
        answer["version"].as_str().map(str::to_owned).ok_or_else(|| format!("no version in {answer}"))
    }

    /// Infers `sample` and returns the version that answered, after checking that the logits are that version's.
    fn infer(&mut self, sample: usize, samples: &[Vec<f32>], references: &References) -> Result<String, String> {
        let body: Vec<u8> = samples[sample].iter().flat_map(|v| v.to_le_bytes()).collect();
        let answer = self.request("POST", "/infer", &body)?;
        let version = answer["version"].as_str().ok_or_else(|| format!("no version in {answer}"))?.to_owned();
        let expected = &references.get(&version).ok_or_else(|| format!("version {version} was never live"))?[sample];
        let logits: Vec<f32> = answer["outputs"]["logits"]["data"]
            .as_array()
            .ok_or_else(|| format!("no logits in {answer}"))?
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
            .collect();
        let worst = logits.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        if logits.len() != expected.len() || worst.is_nan() || worst > 1e-4 {
            return Err(format!("version {version}, sample {sample}: logits {logits:?}, expected {expected:?}"));
        }
        Ok(version)
    }
}

/// What one client thread saw.
#[derive(Default)]
struct Tally {
    answers: BTreeMap<String, usize>,
    failures: Vec<String>,
    last: Option<String>,
}

/// Client threads sending requests, one after another with a [`PAUSE`], until stopped.
struct Hammer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

impl Hammer {
    fn start(addr: &str, clients: usize, samples: &Arc<Vec<Vec<f32>>>, references: &Arc<References>) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|k| {
                let (addr, stop, samples, references) =
                    (addr.to_owned(), stop.clone(), samples.clone(), references.clone());
                thread::spawn(move || {
                    let mut tally = Tally::default();
                    let mut client = None;
                    let mut sent = k;
                    while !stop.load(Ordering::Relaxed) {
                        let connected = match client.as_mut() {
                            Some(connected) => connected,
                            None => match Client::connect(&addr) {
                                Ok(connected) => client.insert(connected),
                                Err(e) => {
                                    tally.failures.push(format!("connect: {e}"));
                                    thread::sleep(Duration::from_millis(10));
                                    continue;
                                }
                            },
                        };
                        match connected.infer(sent % SAMPLES, &samples, &references) {
                            Ok(version) => {
                                *tally.answers.entry(version.clone()).or_default() += 1;
                                tally.last = Some(version);
                                sent += 1;
                                thread::sleep(PAUSE);
                            }
                            Err(e) => {
                                tally.failures.push(e);
                                // A fresh connection: the old one may be in any state.
                                client = None;
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        Hammer { stop, threads }
    }

    fn finish(self) -> Vec<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().expect("client thread")).collect()
    }
}

/// Asks until the consumer answers `want`, on a connection of its own; returns how long that took.
fn wait_for(consumer: &Consumer, want: Version, within: Duration) -> Duration {
    let start = Instant::now();
    let mut client = Client::connect(&consumer.addr).unwrap();
    loop {
        let version = client.version().unwrap_or_else(|e| panic!("{e}\n{}", consumer.log()));
        if version == want.to_string() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "still answering version {version}, not {want}, {:?} after the switch\n{}",
            start.elapsed(),
            consumer.log()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// All client threads' answers, after asserting that none failed.
fn no_failures(tallies: &[Tally], consumer: &Consumer) -> BTreeMap<String, usize> {
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    assert!(
        failures.is_empty(),
        "{} requests failed, the first: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        consumer.log()
    );
    let mut answers = BTreeMap::new();
    for (version, n) in tallies.iter().flat_map(|t| &t.answers) {
        *answers.entry(version.clone()).or_insert(0) += n;
    }
    answers
}

#[test]
fn consumer_answers_every_request_while_the_live_version_switches_under_it() {
    let dir = support::tempdir();
    let (store, _) = Store::open(dir.path()).unwrap();
    let model = ModelName::new(MODEL).unwrap();
    let (original, shifted) = (digits(), digits_shifted());
    let v1 = publish(&store, &model, &original);
    let v2 = publish(&store, &model, &shifted);
    let samples = Arc::new(samples());
    let references = Arc::new(references(&[(v1, &original), (v2, &shifted)], &samples));
    let gap = references[&v2.to_string()][0][0] - references[&v1.to_string()][0][0];
    assert!((gap - 10.0).abs() < 1e-3, "version 2 must answer version 1's logits + 10, not + {gap}");
    store.switch(&model, v1).unwrap();

    let consumer = Consumer::start(&store.live_path(&model));
    let hammer = Hammer::start(&consumer.addr, 3, &samples, &references);
    let mut live = BTreeSet::from([v1.to_string()]);
    let started = Instant::now();
    // Uneven pauses: some switches land while the previous one is still loading, some long after; 31 in ~3 s.
    for i in 0..31 {
        thread::sleep(Duration::from_millis([40, 150, 90, 5, 200][i % 5]));
        let switch = if i % 2 == 0 { store.switch(&model, v2) } else { store.rollback(&model) }.unwrap();
        live.insert(switch.live.to_string());
    }
    let last = store.live(&model).unwrap().unwrap();
    assert_eq!(last, v2);
    let pickup = wait_for(&consumer, last, PICKUP);
    // The clients too must now get the last version, and keep getting it.
    thread::sleep(Duration::from_millis(300));
    let tallies = hammer.finish();
    let answers = no_failures(&tallies, &consumer);
    eprintln!(
        "answers per version {answers:?} in {:?}; last version answered {pickup:?} after its switch",
        started.elapsed()
    );
    for version in answers.keys() {
        assert!(live.contains(version), "version {version} answered but was never live ({live:?})");
    }
    assert!(answers.len() == 2, "answers from both versions expected, got {answers:?}\n{}", consumer.log());
    assert!(answers.values().sum::<usize>() >= 100, "too few requests to mean anything: {answers:?}");
    for tally in &tallies {
        assert_eq!(tally.last.as_deref(), Some(last.to_string().as_str()), "a client's last answer");
    }
}

#[test]
fn consumer_keeps_the_old_version_when_the_new_one_does_not_load() {
    let dir = support::tempdir();
    let (store, _) = Store::open(dir.path()).unwrap();
    let model = ModelName::new(MODEL).unwrap();
    let (original, shifted) = (digits(), digits_shifted());
    let good = publish(&store, &model, &original);
    let corrupt = publish(&store, &model, b"\x08\x07not an ONNX model, whatever its name says\xff\xff");
    let after = publish(&store, &model, &shifted);
    let samples = Arc::new(samples());
    let references = Arc::new(references(&[(good, &original), (after, &shifted)], &samples));
    store.switch(&model, good).unwrap();

    let consumer = Consumer::start(&store.live_path(&model));
    let hammer = Hammer::start(&consumer.addr, 2, &samples, &references);
    thread::sleep(Duration::from_millis(200));
    store.switch(&model, corrupt).unwrap();
    let refused = format!("failed to load, still serving version {good}");
    let start = Instant::now();
    while !consumer.log().contains(&refused) {
        assert!(start.elapsed() < Duration::from_secs(5), "no load failure logged\n{}", consumer.log());
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(200));
    let mut client = Client::connect(&consumer.addr).unwrap();
    assert_eq!(client.version().unwrap(), good.to_string(), "{}", consumer.log());
    assert_eq!(client.infer(0, &samples, &references).unwrap(), good.to_string());

    // Still watching after a failure: the next good version is picked up.
    store.switch(&model, after).unwrap();
    let pickup = wait_for(&consumer, after, PICKUP);
    thread::sleep(Duration::from_millis(100));
    let answers = no_failures(&hammer.finish(), &consumer);
    eprintln!("answers per version {answers:?}; version {after} answered {pickup:?} after its switch");
    assert!(!answers.contains_key(&corrupt.to_string()));
    assert!(answers.contains_key(&good.to_string()) && answers.contains_key(&after.to_string()), "{answers:?}");
}
