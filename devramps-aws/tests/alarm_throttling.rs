//! CloudWatch throttling, for real error codes: a tiny loopback HTTP server in front of moto
//! answers the first `DescribeAlarms` calls with CloudWatch's `Throttling` error (status 400,
//! `x-amzn-query-error: Throttling;Sender`, a CBOR body with `__type`, as the rpc-v2-cbor
//! protocol of the SDK's CloudWatch client has it) and forwards every other request to moto.
//!
//! It proves that a throttled `DescribeAlarms` is a transient [`devramps_core::Error`]
//! (`Unavailable`, naming the code) and that the poller goes on through throttled polls: it
//! learns the state once a poll gets through and then reports changes as usual. (The fault
//! proxy of `devramps-s3-faults` forwards any service but answers only S3's 5xx errors: the
//! `alarm_source` test uses it for 5xx outages.)

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use devramps_aws::alarms::AlarmOptions;
use devramps_aws::{AwsStages, CloudWatchAlarmSource};
use devramps_core::backend::{AlarmSource, StageTarget};
use devramps_core::lifecycle::AlarmState;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `{"__type": "Throttling"}` in CBOR: a map of one pair, two text strings.
const THROTTLING_CBOR: &[u8] = b"\xa1\x66__type\x6aThrottling";

/// Starts the server; returns its endpoint and the count of requests it throttled.
async fn throttling_server(upstream: String, throttle_first: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let throttled = Arc::new(AtomicUsize::new(0));
    let count = throttled.clone();
    let http = reqwest::Client::new();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (count, http, upstream) = (count.clone(), http.clone(), upstream.clone());
            tokio::spawn(async move {
                let _ = serve(socket, &count, throttle_first, &http, &upstream).await;
            });
        }
    });
    (endpoint, throttled)
}

/// Answers one request (then closes the connection).
async fn serve(
    mut socket: TcpStream,
    throttled: &AtomicUsize,
    throttle_first: usize,
    http: &reqwest::Client,
    upstream: &str,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..].to_vec();

    if path.contains("DescribeAlarms") && throttled.fetch_add(1, Ordering::SeqCst) < throttle_first
    {
        let mut answer = format!(
            "HTTP/1.1 400 Bad Request\r\nsmithy-protocol: rpc-v2-cbor\r\n\
             content-type: application/cbor\r\nx-amzn-query-error: Throttling;Sender\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            THROTTLING_CBOR.len()
        )
        .into_bytes();
        answer.extend_from_slice(THROTTLING_CBOR);
        return socket.write_all(&answer).await;
    }
    if path.contains("DescribeAlarms") {
        throttled.fetch_sub(1, Ordering::SeqCst); // counted only when throttled
    }
    let mut request = http.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{upstream}{path}"),
    );
    for (k, v) in &headers {
        if !matches!(k.as_str(), "host" | "connection" | "content-length") {
            request = request.header(k, v);
        }
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(std::io::Error::other)?;
    let mut answer = format!("HTTP/1.1 {}\r\n", response.status());
    for (k, v) in response.headers() {
        let k = k.as_str();
        if !matches!(k, "connection" | "content-length" | "transfer-encoding") {
            answer.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
        }
    }
    let bytes = response.bytes().await.map_err(std::io::Error::other)?;
    answer.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        bytes.len()
    ));
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&bytes);
    socket.write_all(&answer).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_polls_are_survived_and_a_throttled_read_is_transient() {
    support::endpoint();
    let direct = AwsStages::from_env().await;
    let target = StageTarget::new(
        format!("p-{}", support::fresh_bucket_name()),
        "prod",
        "222222222222",
        "us-west-2",
    );
    let name = format!("throttled-{}", support::fresh_bucket_name());
    let cw = direct.stage_cloudwatch(&target);
    cw.put_metric_alarm()
        .alarm_name(&name)
        .namespace("devramps/test")
        .metric_name("errors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutMetricAlarm: {e:?}\n{}", support::HOW_TO_START_MOTO));
    let set = |state: StateValue| {
        cw.set_alarm_state()
            .alarm_name(&name)
            .state_value(state)
            .state_reason("devramps throttling test")
            .send()
    };
    set(StateValue::Ok).await.unwrap();

    // Four throttled DescribeAlarms; the SDK's retries off, so each is one read or one poll.
    let (endpoint, throttled) = throttling_server(support::endpoint(), 4).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let options = AlarmOptions {
        interval: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
    };
    let source = CloudWatchAlarmSource::with_options(AwsStages::new(config), options);
    let alarm = source.watch(target.clone(), &name);

    let error = source.state(&alarm).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("Throttling"), "{error}");

    let mut changes = source.subscribe();
    let mut learned = None;
    for _ in 0..100 {
        if throttled.load(Ordering::SeqCst) >= 4
            && let Ok(Some(state)) = source.state(&alarm).await
        {
            learned = Some(state);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        learned,
        Some(AlarmState::Ok),
        "learned after the throttled polls"
    );
    assert_eq!(throttled.load(Ordering::SeqCst), 4);

    set(StateValue::Alarm).await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(5), changes.next())
        .await
        .expect("the change arrives after throttling")
        .expect("the subscription is open");
    assert_eq!(change.state, AlarmState::Alarm);
    source.shutdown();
}
