//! Simulated plans per second on a bundle (`make bench` runs it on PP-OCRv4 det with 8 evaluation tensors):
//! `cargo bench --bench simulate -- BUNDLE [SCALES_JSON] [PLANS]`.
//!
//! The plans are the two uniform ones and seeded random mixes of INT8/FP16/FP32, as a search produces them. Times
//! exclude the one-time FP32 references; each plan's time includes its compile and its runs over every sample.

use std::path::PathBuf;
use std::time::Instant;

use precisiond::calib::ScalesFile;
use precisiond::pipeline::Job;
use precisiond::precision::{Plan, Precision};
use precisiond::progress::Silent;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(bundle) = args.first() else {
        eprintln!("usage: cargo bench --bench simulate -- BUNDLE [SCALES_JSON] [PLANS]");
        std::process::exit(2);
    };
    let job = Job::open(&PathBuf::from(bundle)).unwrap_or_else(|e| fail(e));
    let scales = match args.get(1) {
        Some(path) => ScalesFile::read(&PathBuf::from(path)).unwrap_or_else(|e| fail(e)),
        None => job.calibrate(&Silent).unwrap_or_else(|e| fail(e)),
    };
    let count: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(12);
    let started = Instant::now();
    let simulator = job.simulator(scales).unwrap_or_else(|e| fail(e));
    let references_s = started.elapsed().as_secs_f64();

    let graph = job.model.graph();
    let mut state = 0x5eed_u64;
    let mut plans = vec![Plan::uniform(&graph, Precision::Int8), Plan::uniform(&graph, Precision::Fp16)];
    while plans.len() < count {
        let mut plan = Plan::uniform(&graph, Precision::Int8);
        for index in graph.quantizable() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let precision = match state >> 61 {
                0 | 1 => Precision::Fp16,
                2 => Precision::Fp32,
                _ => Precision::Int8,
            };
            plan = plan.with(&graph.node(index).name, precision);
        }
        plans.push(plan);
    }
    let mut times = Vec::new();
    for plan in &plans {
        let t = Instant::now();
        simulator.evaluate(plan, &Silent).unwrap_or_else(|e| fail(e));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let total: f64 = times.iter().sum();
    println!(
        "{{\"bench\":\"simulate\",\"bundle\":{:?},\"samples\":{},\"plans\":{},\"median_plan_s\":{:.3},\"plans_per_s\":{:.2},\"references_s\":{:.2}}}",
        bundle,
        simulator.sample_count(),
        plans.len(),
        median,
        plans.len() as f64 / total,
        references_s
    );
}

fn fail(e: impl Into<precisiond::error::Failure>) -> ! {
    eprint!("{}", e.into());
    std::process::exit(1)
}
