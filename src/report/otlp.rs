//! Metrics as OTLP/HTTP JSON (`[upstream] otlp_url`, usually a local OpenTelemetry collector on port 4318,
//! path `/v1/metrics`).
//!
//! The body is an `ExportMetricsServiceRequest` in the protobuf JSON mapping the OTLP specification asks for:
//! lowerCamelCase keys, 64-bit integers (times in ns, `asInt`) as decimal strings, enums as integers
//! (`aggregationTemporality` 2 = cumulative), non-finite doubles as `"NaN"`/`"Infinity"`/`"-Infinity"`:
//!
//! ```json
//! {"resourceMetrics": [{
//!   "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "precisiond"}}]},
//!   "scopeMetrics": [{"scope": {"name": "precisiond", "version": "0.1.0"}, "metrics": [
//!     {"name": "precisiond.outbox.depth", "unit": "{event}", "description": "…",
//!      "gauge": {"dataPoints": [{"timeUnixNano": "1795000000000000000", "asInt": "12", "attributes": []}]}},
//!     {"name": "precisiond.jobs", "unit": "{job}", "description": "…",
//!      "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
//!        {"startTimeUnixNano": "…", "timeUnixNano": "…", "asInt": "3",
//!         "attributes": [{"key": "outcome", "value": {"stringValue": "published"}}]}]}}]}]}]}
//! ```
//!
//! Metrics are current values, not records: they are not kept in the outbox. The daemon exports them
//! periodically and, per the specification, retries only 429, 502, 503 and 504 (honouring `Retry-After`); when
//! the collector is away the next export carries newer values anyway.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{body_excerpt, describe, retry_after};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    Gauge,
    /// A cumulative sum since the point's `start_time` (a counter when monotonic).
    Sum {
        monotonic: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricValue {
    Int(i64),
    Double(f64),
}

/// One data point of one metric; points with the same name become one metric with several data points (telling
/// them apart by attributes), which takes its kind, unit and description from the first.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    pub description: String,
    /// UCUM, e.g. `ms`, `By`, `1`, `{event}`.
    pub unit: String,
    pub kind: MetricKind,
    pub value: MetricValue,
    pub attributes: Vec<(String, String)>,
    pub time: SystemTime,
    /// Sums: when counting began (the daemon's start). Absent: `time`.
    pub start_time: Option<SystemTime>,
}

impl MetricPoint {
    pub fn gauge(name: impl Into<String>, value: f64) -> MetricPoint {
        MetricPoint::new(name, MetricKind::Gauge, MetricValue::Double(value))
    }

    pub fn int_gauge(name: impl Into<String>, value: i64) -> MetricPoint {
        MetricPoint::new(name, MetricKind::Gauge, MetricValue::Int(value))
    }

    /// A monotonic cumulative count since `start`.
    pub fn counter(name: impl Into<String>, total: u64, start: SystemTime) -> MetricPoint {
        let mut point = MetricPoint::new(
            name,
            MetricKind::Sum { monotonic: true },
            MetricValue::Int(i64::try_from(total).unwrap_or(i64::MAX)),
        );
        point.start_time = Some(start);
        point
    }

    fn new(name: impl Into<String>, kind: MetricKind, value: MetricValue) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            description: String::new(),
            unit: String::new(),
            kind,
            value,
            attributes: Vec::new(),
            time: SystemTime::now(),
            start_time: None,
        }
    }

    pub fn unit(mut self, unit: impl Into<String>) -> MetricPoint {
        self.unit = unit.into();
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> MetricPoint {
        self.description = description.into();
        self
    }

    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> MetricPoint {
        self.attributes.push((key.into(), value.into()));
        self
    }

    pub fn at(mut self, time: SystemTime) -> MetricPoint {
        self.time = time;
        self
    }
}

/// The export request for `points`, with the resource `service.name = precisiond` and `service.version`.
pub fn encode(points: &[MetricPoint]) -> Value {
    encode_with_resource(&[], points)
}

/// As [`encode`], with more resource attributes (e.g. `("host.id", device_id)`).
pub fn encode_with_resource(resource: &[(&str, &str)], points: &[MetricPoint]) -> Value {
    let mut resource_attributes =
        vec![attribute("service.name", "precisiond"), attribute("service.version", env!("CARGO_PKG_VERSION"))];
    resource_attributes.extend(resource.iter().map(|(k, v)| attribute(k, v)));

    // Grouped by name in order of first appearance.
    let mut metrics: Vec<(&MetricPoint, Vec<Value>)> = Vec::new();
    for point in points {
        let data_point = data_point(point);
        match metrics.iter_mut().find(|(first, _)| first.name == point.name) {
            Some((_, data_points)) => data_points.push(data_point),
            None => metrics.push((point, vec![data_point])),
        }
    }
    let metrics: Vec<Value> = metrics
        .into_iter()
        .map(|(first, data_points)| {
            let mut metric = json!({ "name": first.name, "description": first.description, "unit": first.unit });
            match first.kind {
                MetricKind::Gauge => metric["gauge"] = json!({ "dataPoints": data_points }),
                MetricKind::Sum { monotonic } => {
                    metric["sum"] = json!({
                        "aggregationTemporality": 2,
                        "isMonotonic": monotonic,
                        "dataPoints": data_points,
                    })
                }
            }
            metric
        })
        .collect();

    json!({
        "resourceMetrics": [{
            "resource": { "attributes": resource_attributes },
            "scopeMetrics": [{
                "scope": { "name": "precisiond", "version": env!("CARGO_PKG_VERSION") },
                "metrics": metrics,
            }],
        }],
    })
}

fn attribute(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn unix_nanos(time: SystemTime) -> String {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()).to_string()
}

fn data_point(point: &MetricPoint) -> Value {
    let mut value = json!({
        "timeUnixNano": unix_nanos(point.time),
        "attributes": point.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
    });
    if let MetricKind::Sum { .. } = point.kind {
        value["startTimeUnixNano"] = json!(unix_nanos(point.start_time.unwrap_or(point.time)));
    }
    match point.value {
        MetricValue::Int(i) => value["asInt"] = json!(i.to_string()),
        MetricValue::Double(d) if d.is_finite() => value["asDouble"] = json!(d),
        MetricValue::Double(d) => {
            value["asDouble"] = json!(if d.is_nan() {
                "NaN"
            } else if d > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            })
        }
    }
    value
}

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("{url}: no answer: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: HTTP {status}: {message}")]
    Status { url: String, status: u16, message: String, retry_after: Option<Duration> },
}

impl OtlpError {
    /// Whether the specification allows sending the same data again: no answer, or 429, 502, 503, 504.
    pub fn is_retryable(&self) -> bool {
        match self {
            OtlpError::Transport { .. } => true,
            OtlpError::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OtlpError::Status { retry_after, .. } => *retry_after,
            OtlpError::Transport { .. } => None,
        }
    }
}

/// Data points the collector accepted the request but rejected (OTLP `partialSuccess`); 0 and no message when all
/// were taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    pub rejected_data_points: i64,
    pub error_message: String,
}

/// POSTs an encoded request (from [`encode`]) once. `client`: [`super::http_client`]; `token`: a bearer token, if
/// the collector wants one.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<PartialSuccess, OtlpError> {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).expect("a JSON value serializes"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response =
        request.send().await.map_err(|e| OtlpError::Transport { url: url.to_string(), message: describe(&e) })?;
    let status = response.status().as_u16();
    let after = retry_after(response.headers(), SystemTime::now());
    let text = body_excerpt(response, 64 << 10).await;
    if !(200..300).contains(&status) {
        return Err(OtlpError::Status { url: url.to_string(), status, message: text, retry_after: after });
    }
    Ok(partial_success(&text))
}

fn partial_success(text: &str) -> PartialSuccess {
    let Ok(value) = serde_json::from_str::<Value>(text) else { return PartialSuccess::default() };
    let partial = &value["partialSuccess"];
    let rejected = match &partial["rejectedDataPoints"] {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    };
    PartialSuccess {
        rejected_data_points: rejected,
        error_message: partial["errorMessage"].as_str().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_otlp_json_shape() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let t1 = t0 + Duration::from_millis(1500);
        let points = [
            MetricPoint::int_gauge("precisiond.outbox.depth", 12).unit("{event}").description("events waiting").at(t1),
            MetricPoint::counter("precisiond.jobs", 3, t0).attr("outcome", "published").unit("{job}").at(t1),
            MetricPoint::counter("precisiond.jobs", 1, t0).attr("outcome", "failed").at(t1),
            MetricPoint::gauge("precisiond.verify.latency", f64::NAN).unit("ms").at(t1),
        ];
        let v = encode_with_resource(&[("host.id", "jetson-17")], &points);
        let rm = &v["resourceMetrics"][0];
        let attrs = rm["resource"]["attributes"].as_array().unwrap();
        assert_eq!(attrs[0], json!({"key": "service.name", "value": {"stringValue": "precisiond"}}));
        assert_eq!(attrs[2], json!({"key": "host.id", "value": {"stringValue": "jetson-17"}}));
        let sm = &rm["scopeMetrics"][0];
        assert_eq!(sm["scope"]["name"], "precisiond");
        let metrics = sm["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 3);
        assert_eq!(
            metrics[0],
            json!({"name": "precisiond.outbox.depth", "description": "events waiting", "unit": "{event}",
                   "gauge": {"dataPoints": [{"timeUnixNano": "1795000001500000000", "asInt": "12", "attributes": []}]}})
        );
        let sum = &metrics[1]["sum"];
        assert_eq!(sum["aggregationTemporality"], 2);
        assert_eq!(sum["isMonotonic"], true);
        let dps = sum["dataPoints"].as_array().unwrap();
        assert_eq!(dps.len(), 2);
        assert_eq!(dps[0]["startTimeUnixNano"], "1795000000000000000");
        assert_eq!(dps[0]["asInt"], "3");
        assert_eq!(dps[1]["attributes"][0]["value"]["stringValue"], "failed");
        assert_eq!(metrics[2]["gauge"]["dataPoints"][0]["asDouble"], "NaN");
    }

    #[test]
    fn retryable_statuses_are_the_specifications() {
        let status =
            |status| OtlpError::Status { url: String::new(), status, message: String::new(), retry_after: None };
        for s in [429, 502, 503, 504] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 404, 413, 500, 501] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        assert!(OtlpError::Transport { url: String::new(), message: String::new() }.is_retryable());
    }

    #[test]
    fn partial_success_is_read() {
        assert_eq!(partial_success("{}"), PartialSuccess::default());
        assert_eq!(partial_success(""), PartialSuccess::default());
        assert_eq!(
            partial_success(r#"{"partialSuccess":{"rejectedDataPoints":"2","errorMessage":"bad unit"}}"#),
            PartialSuccess { rejected_data_points: 2, error_message: "bad unit".into() }
        );
    }
}
