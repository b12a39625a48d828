//! A small W3C WebDriver client for the browser tests: headless Chromium through
//! `chromedriver` (Debian's `chromium` and `chromium-driver`), over plain HTTP on
//! loopback. Only what the tests use: navigate, find, read, type, click, run a
//! script, screenshot.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C key of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session, ended (and chromedriver stopped) on drop.
pub struct Driver {
    child: Child,
    port: u16,
    session: String,
    /// Where the browser saves downloads.
    pub downloads: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The first of `names` found on PATH (or the environment variable's value).
fn program(var: &str, names: &[&str]) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Ok(p.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/lib/chromium"), PathBuf::from("/usr/bin")]) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!("{} not found (install Debian's chromium and chromium-driver, as .ci/run does, or set {var})", names.join(" / "))
}

impl Driver {
    /// Starts chromedriver and a headless Chromium with a phone-sized window.
    pub fn start(downloads: &Path, width: u32, height: u32) -> anyhow::Result<Driver> {
        let driver = program("HUIJIAO_CHROMEDRIVER", &["chromedriver"])?;
        let browser = program("HUIJIAO_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"])?;
        std::fs::create_dir_all(downloads)?;
        let port = free_port()?;
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", driver.display()))?;
        let mut d = Driver { child, port, session: String::new(), downloads: downloads.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser.display().to_string(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", format!("--window-size={width},{height}")],
                "prefs": {"download.default_directory": downloads.display().to_string(),
                          "download.prompt_for_download": false}
            }
        }}});
        let v = d.call("POST", "/session", Some(caps))?;
        d.session = v["value"]["sessionId"].as_str().or(v["sessionId"].as_str()).context("no session id")?.to_string();
        // Downloads in headless mode need permission through CDP.
        let _ = d.call(
            "POST",
            &format!("/session/{}/goog/cdp/execute", d.session),
            Some(json!({"cmd": "Browser.setDownloadBehavior", "params": {"behavior": "allow", "downloadPath": downloads.display().to_string()}})),
        );
        Ok(d)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // chromedriver may keep the connection open: read the header, then exactly
        // the body it announces.
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        let end = loop {
            if let Some(e) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break e;
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                bail!("chromedriver closed the connection before answering {method} {path}");
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let mut body = raw[end + 4..].to_vec();
        let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
        match length {
            Some(len) => {
                while body.len() < len {
                    let n = s.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&buf[..n]);
                }
            }
            None => {
                s.read_to_end(&mut body)?;
                if head.contains("transfer-encoding: chunked") {
                    body = dechunk(&body);
                }
            }
        }
        let v: Value = serde_json::from_slice(&body).with_context(|| format!("chromedriver answered {method} {path} with no JSON"))?;
        if let Some(err) = v["value"]["error"].as_str() {
            bail!("{method} {path}: {err}: {}", v["value"]["message"].as_str().unwrap_or(""));
        }
        Ok(v)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        Ok(self.call(method, &format!("/session/{}{path}", self.session), body)?["value"].clone())
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session_call("POST", "/url", Some(json!({"url": url})))?;
        Ok(())
    }

    pub fn url(&self) -> anyhow::Result<String> {
        Ok(self.session_call("GET", "/url", None)?.as_str().unwrap_or("").to_string())
    }

    /// Element ids matching a CSS selector.
    pub fn find_all(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let v = self.session_call("POST", "/elements", Some(json!({"using": "css selector", "value": css})))?;
        Ok(v.as_array().into_iter().flatten().filter_map(|e| e[ELEMENT].as_str().map(str::to_string)).collect())
    }

    pub fn find(&self, css: &str) -> anyhow::Result<String> {
        self.find_all(css)?.into_iter().next().with_context(|| {
            let page: String = self.source().unwrap_or_default().chars().take(600).collect();
            format!("no element matches `{css}` at {}: {page}", self.url().unwrap_or_default())
        })
    }

    pub fn text(&self, el: &str) -> anyhow::Result<String> {
        Ok(self.session_call("GET", &format!("/element/{el}/text"), None)?.as_str().unwrap_or("").to_string())
    }

    pub fn attr(&self, el: &str, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self.session_call("GET", &format!("/element/{el}/attribute/{name}"), None)?.as_str().map(str::to_string))
    }

    pub fn click(&self, el: &str) -> anyhow::Result<()> {
        self.session_call("POST", &format!("/element/{el}/click"), Some(json!({})))?;
        Ok(())
    }

    pub fn type_into(&self, el: &str, text: &str) -> anyhow::Result<()> {
        self.session_call("POST", &format!("/element/{el}/clear"), Some(json!({})))?;
        self.session_call("POST", &format!("/element/{el}/value"), Some(json!({"text": text})))?;
        Ok(())
    }

    /// Sends keys to an element without clearing it first (a file input takes a path).
    pub fn send_keys(&self, el: &str, text: &str) -> anyhow::Result<()> {
        self.session_call("POST", &format!("/element/{el}/value"), Some(json!({"text": text})))?;
        Ok(())
    }

    /// The value of the browser's cookie `name` for the current page (HttpOnly ones too).
    pub fn cookie(&self, name: &str) -> anyhow::Result<Option<String>> {
        let all = self.session_call("GET", "/cookie", None)?;
        Ok(all.as_array().into_iter().flatten().find(|c| c["name"] == name).and_then(|c| c["value"].as_str().map(str::to_string)))
    }

    /// Runs a script in the page; `arguments` are passed as given.
    pub fn script(&self, js: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.session_call("POST", "/execute/sync", Some(json!({"script": js, "args": args})))
    }

    /// The page's whole DOM as HTML.
    pub fn source(&self) -> anyhow::Result<String> {
        Ok(self.session_call("GET", "/source", None)?.as_str().unwrap_or("").to_string())
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let v = self.session_call("GET", "/screenshot", None)?;
        let png = base64_decode(v.as_str().context("no screenshot")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Polls `cond` (which may use the driver) until it holds or `limit` passes.
    pub fn wait_for(&self, what: &str, limit: Duration, mut cond: impl FnMut(&Driver) -> anyhow::Result<bool>) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if cond(self).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out after {limit:?} waiting for {what} (at {})", self.url().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        b = &b[nl + 2..];
        if size == 0 || size > b.len() {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
    out
}

fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    let val = |c: u8| -> anyhow::Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {}", c as char),
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let pads = chunk.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= if c == b'=' { 0 } else { val(c)? } << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pads]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_decode("aHVpamlhbw==").unwrap(), b"huijiao");
        assert_eq!(super::base64_decode("YWJj").unwrap(), b"abc");
    }
}
