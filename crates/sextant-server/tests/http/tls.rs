//! HTTPS with a configured certificate (the `tls` feature): `cargo test -p sextant-server --features tls`.

use std::process::Command;

use crate::common::{config, start_with};

#[test]
fn serves_https_with_the_configured_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut c = config(false);
    c.tls.cert = cert.display().to_string();
    c.tls.key = key.display().to_string();
    let t = start_with(c);
    let url = format!("https://{}/healthz", t.server.addr());
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"status":"ok"}"#);
    // Plain HTTP to the TLS port gets no answer.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "3"])
        .arg(format!("http://{}/healthz", t.server.addr()))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));
}
