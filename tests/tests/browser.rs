//! The browser harness (`jobline_tests::browser`) against a page of its own,
//! served here on 127.0.0.1: headless Chromium opens it, reads what it
//! shows, presses its button (a form's POST), reads the answer and leaves a
//! screenshot. Needs Chromium and ChromeDriver, not the emulator.

use fantoccini::Locator;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jobline_tests::browser::Browser;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// The page with the form: a heading, a button that POSTs, and a paragraph
/// that is in the page but not shown.
const FORM_PAGE: &str = r#"<!doctype html>
<html><head><title>Browser smoke test</title></head>
<body>
<h1 id="waiting">Nothing sent yet</h1>
<form method="post" action="/sent">
  <input type="hidden" name="choice" value="yes">
  <button type="submit">Send</button>
</form>
<p hidden>Not for a person's eyes</p>
</body></html>"#;

/// The bodies of the POSTs the server received, in order.
type Posts = Arc<Mutex<Vec<String>>>;

/// Serves [`FORM_PAGE`] on `GET /`, and on `POST /sent` records the body
/// and answers with a page that shows it.
async fn page(
    request: hyper::Request<Incoming>,
    posts: Posts,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let html = if parts.method == http::Method::POST && parts.uri.path() == "/sent" {
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        let html =
            format!("<!doctype html><html><body><h1 id=\"sent\">Sent: {body}</h1></body></html>");
        posts.lock().expect("the posts' lock").push(body);
        html
    } else {
        FORM_PAGE.to_owned()
    };
    Ok(hyper::Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(html)))
        .expect("static response parts are valid"))
}

/// Starts the page's server on a free loopback port.
async fn serve(posts: Posts) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the server's address");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let posts = posts.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| page(request, posts.clone()));
                // The browser may drop a connection when the test ends.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_person_presses_the_button_and_sees_the_answer() {
    let posts = Posts::default();
    let (addr, server) = serve(posts.clone()).await;
    let browser = Browser::launch().await;

    browser.goto(&format!("http://{addr}/")).await;
    assert_eq!(browser.text("#waiting").await, "Nothing sent yet");
    let body = browser.text("body").await;
    assert!(
        !body.contains("Not for a person's eyes"),
        "hidden text is not visible text: {body:?}"
    );

    browser
        .client()
        .find(Locator::Css("button"))
        .await
        .expect("the Send button")
        .click()
        .await
        .expect("click Send");
    assert_eq!(browser.text("#sent").await, "Sent: choice=yes");
    assert_eq!(*posts.lock().expect("the posts' lock"), ["choice=yes"]);

    let path = browser.screenshot("browser-smoke").await;
    assert!(
        path.ends_with("console-screenshots/browser-smoke.png"),
        "{}",
        path.display()
    );
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    // The IHDR chunk's width: the window is 1280 pixels wide.
    assert_eq!(png[16..20], 1280u32.to_be_bytes(), "the screenshot's width");

    browser.close().await;
    server.abort();
}
