//! A small HTTP/1.1 server on 127.0.0.1 standing in for a Slack incoming webhook: it records
//! every request's JSON body and answers from a script (then 200 `ok`).
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One answer: status and extra header lines.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Answer>,
    /// (path, body, status answered)
    requests: Vec<(String, serde_json::Value, u16)>,
}

/// The running server.
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Webhook {
    /// Starts the server on a free loopback port (on the current tokio runtime).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let Some((path, body)) = read_request(&mut socket).await else {
                        return;
                    };
                    let answer = {
                        let mut st = s.lock().expect("lock");
                        let answer = st.script.pop_front().unwrap_or(Answer::status(200));
                        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                        st.requests.push((path, json, answer.status));
                        answer
                    };
                    let text = if answer.status == 200 { "ok" } else { "error" };
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        answer.status,
                        text.len()
                    );
                    for (k, v) in &answer.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    head.push_str(text);
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Webhook {
            url: format!("http://{addr}/services/T000/B000/SECRETTOKEN"),
            state,
        }
    }

    /// Answers the next requests with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().expect("lock").script.extend(answers);
    }

    /// Every request so far: (path, JSON body, status answered).
    pub fn requests(&self) -> Vec<(String, serde_json::Value, u16)> {
        self.state.lock().expect("lock").requests.clone()
    }

    /// The bodies answered 200.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|(_, _, status)| *status == 200)
            .map(|(_, body, _)| body)
            .collect()
    }
}

/// Reads one request: its path and body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((path, buf[head_end..head_end + length].to_vec()))
}
