//! Reports: every picture decodes as a PNG of the expected size and is not blank,
//! SVGs parse as XML, metrics.json matches what the run printed, and index.html
//! references only files that exist.

mod common;

use std::path::Path;

use common::nnlab;

/// Checks every file of a report folder; returns the PNG names.
fn check_report(dir: &Path) -> Vec<String> {
    let mut pngs = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        match p.extension().and_then(|x| x.to_str()) {
            Some("png") => {
                let img = image::open(&p)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .to_rgb8();
                assert!(
                    img.width() >= 200 && img.height() >= 200,
                    "{name}: {}x{}",
                    img.width(),
                    img.height()
                );
                let mut levels: Vec<u8> = img.pixels().map(|p| p.0[0]).collect();
                levels.sort_unstable();
                levels.dedup();
                assert!(
                    levels.len() >= 16,
                    "{name} looks blank ({} grey levels)",
                    levels.len()
                );
                pngs.push(name);
            }
            Some("svg") => {
                let text = std::fs::read_to_string(&p).unwrap();
                let doc =
                    roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(doc.root_element().tag_name().name(), "svg");
            }
            Some("json") => {
                serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&p).unwrap())
                    .unwrap();
            }
            _ => {}
        }
    }
    // index.html links only to files that exist, and shows every PNG
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            assert!(
                dir.join(target).exists(),
                "index.html points at missing {target}"
            );
        }
    }
    for p in &pngs {
        assert!(html.contains(p.as_str()), "index.html does not show {p}");
    }
    assert!(!html.contains("<script"));
    pngs
}

#[test]
fn train_report_is_complete_and_consistent() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 200, 100, 28, 28, 4);
    let rep = d.path().join("report");
    let (ok, out, err) = nnlab(&[
        "train",
        "--dataset",
        data.to_str().unwrap(),
        "--hidden",
        "16",
        "--epochs",
        "3",
        "--batch",
        "20",
        "--validation",
        "40",
        "--json",
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let pngs = check_report(&rep);
    for want in [
        "train_cost.png",
        "train_accuracy.png",
        "train_confusion.png",
        "train_mistakes.png",
        "train_weights.png",
    ] {
        assert!(pngs.contains(&want.to_string()), "missing {want}: {pngs:?}");
    }
    // metrics.json says what the run printed
    let result: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["test_accuracy"], result["test_accuracy"]);
    assert_eq!(metrics["history"].as_array().unwrap().len(), 3);
    let csv = std::fs::read_to_string(rep.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    // the page opens with the run's figures and shows its per-epoch table
    let html = std::fs::read_to_string(rep.join("index.html")).unwrap();
    let acc = format!("{:.4}", result["test_accuracy"].as_f64().unwrap());
    let summary = &html[..html.find("<h2>").unwrap()];
    for want in [
        "test accuracy",
        acc.as_str(),
        "validation accuracy",
        "net",
        "dense",
    ] {
        assert!(
            summary.contains(want),
            "the summary lacks {want}: {summary}"
        );
    }
    assert!(html.contains("<th>val loss</th>"), "{html}");
    assert_eq!(
        html.matches("<tr><th>").count(),
        5 + 1 + 3,
        "summary rows, the header, the epochs"
    );
    assert!(html.contains("<details><summary>config"), "{html}");
    // the cost chart draws the validation loss and numbers its log axis
    let svg = std::fs::read_to_string(rep.join("train_cost.svg")).unwrap();
    assert!(svg.contains("validation loss"), "{svg}");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let decimals = doc
        .descendants()
        .filter_map(|n| n.text())
        .filter(|t| t.trim().parse::<f64>().is_ok_and(|v| v.fract() != 0.0))
        .count();
    assert!(decimals >= 2, "the cost axis has {decimals} labelled ticks");
}

#[test]
fn lab_all_report_has_the_comparison_charts() {
    let d = tempfile::tempdir().unwrap();
    let rep = d.path().join("labs");
    let (ok, out, err) = nnlab(&[
        "lab",
        "all",
        "--epochs",
        "1",
        "--quiet",
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let pngs = check_report(&rep);
    for want in [
        "labs_accuracy.png",
        "labs_cost.png",
        "nn_cost.png",
        "dropout_weights.png",
    ] {
        assert!(pngs.contains(&want.to_string()), "missing {want}: {pngs:?}");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("metrics.json")).unwrap()).unwrap();
    let printed: Vec<f64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Accuracy: "))
        .map(|a| a.trim().parse().unwrap())
        .collect();
    assert_eq!(printed.len(), 4);
    for (lab, acc) in ["nn", "xavier", "deep", "dropout"].iter().zip(printed) {
        let m = metrics[lab]["test_accuracy"].as_f64().unwrap();
        assert!((m - acc).abs() < 6e-5, "{lab}: {m} vs printed {acc}");
    }
}

#[test]
fn report_folder_that_cannot_be_written_is_refused_first() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let bad = f.path().join("rep");
    let (ok, _, err) = nnlab(&["train", "--epochs", "30", "--report", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("report folder"), "{err}");
}

/// `eval --report` writes its page and metrics.json (the confusion matrix as rows, the
/// accuracy as printed), and JSON output prints f32 figures as they print (0.7, not
/// 0.699999988079071).
#[test]
fn eval_report_has_its_page_and_tidy_metrics() {
    let d = tempfile::tempdir().unwrap();
    let m = common::tiny_model(d.path(), 4, 4);
    let out_dir = d.path().join("evrep");
    let (ok, out, err) = nnlab(&[
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--report",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("report:"), "{out}");
    let page = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(page.contains("metrics.json"), "{page}");
    let text = std::fs::read_to_string(out_dir.join("metrics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = &v["models"][0];
    let conf = model["confusion"].as_array().unwrap();
    assert_eq!(conf.len(), 3, "a row per class");
    assert!(conf.iter().all(|r| r.as_array().unwrap().len() == 3));
    let acc = model["accuracy"].as_f64().unwrap();
    assert_eq!(
        acc,
        format!("{}", acc as f32).parse::<f64>().unwrap(),
        "{text}"
    );
    // a config's keep_prob of 0.7 is written as 0.7 in a train report's metrics.json
    let train_dir = d.path().join("trainrep");
    let (ok, _, err) = nnlab(&[
        "train",
        "--dataset",
        d.path().join("data4x4").to_str().unwrap(),
        "--hidden",
        "4",
        "--keep-prob",
        "0.7",
        "--epochs",
        "1",
        "--validation",
        "5",
        "--quiet",
        "--report",
        train_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(train_dir.join("metrics.json")).unwrap();
    assert!(text.contains("\"keep_prob\": 0.7,"), "{text}");
}

/// `nnlab compare` puts two training reports side by side: both runs in the table,
/// only the differing setting listed, the overlaid curves drawn; a folder that is no
/// report, and an --out that is one of the compared folders, are refused by name.
#[test]
fn compare_overlays_runs_and_lists_config_differences() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 200, 100, 28, 28, 4);
    let mut dirs = Vec::new();
    for (name, lr) in [("slow", "0.001"), ("fast", "0.01")] {
        let rep = d.path().join(name);
        let (ok, _, err) = nnlab(&[
            "train",
            "--dataset",
            data.to_str().unwrap(),
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--batch",
            "20",
            "--validation",
            "40",
            "--lr",
            lr,
            "--quiet",
            "--report",
            rep.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        dirs.push(rep);
    }
    let out_dir = d.path().join("cmp");
    let (ok, out, err) = nnlab(&[
        "compare",
        dirs[0].to_str().unwrap(),
        dirs[1].to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("compared 2 runs"), "{out}");
    let pngs = check_report(&out_dir);
    for want in [
        "compare_cost.png",
        "compare_val_loss.png",
        "compare_val_acc.png",
    ] {
        assert!(pngs.contains(&want.to_string()), "missing {want}: {pngs:?}");
    }
    let html = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(
        html.contains("<th>slow</th>") && html.contains("<th>fast</th>"),
        "{html}"
    );
    assert!(
        html.contains("<th>optimizer.lr</th><td>0.001</td><td>0.01</td>"),
        "{html}"
    );
    assert!(
        !html.contains("<th>seed</th>"),
        "equal settings are not listed"
    );
    // refused: a folder without a report, and writing over a compared folder
    let (ok, _, err) = nnlab(&["compare", data.to_str().unwrap()]);
    assert!(!ok && err.contains("history.csv"), "{err}");
    let (ok, _, err) = nnlab(&[
        "compare",
        dirs[0].to_str().unwrap(),
        "--out",
        dirs[0].to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("one of the folders compared"), "{err}");
}

/// `train --live`: the report is served on loopback while training (a page that
/// reloads itself) and, once training ends, the final report until a signal stops the
/// server cleanly; only the report's own files are served.
#[test]
fn live_report_is_served_while_training_and_after() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 400, 100, 28, 28, 4);
    let rep = d.path().join("live");
    // files the server must not give: beside the report, hidden in it, linked from it
    std::fs::create_dir_all(&rep).unwrap();
    std::fs::write(d.path().join("secret.html"), "secret").unwrap();
    std::fs::write(rep.join(".hidden.html"), "secret").unwrap();
    std::os::unix::fs::symlink(d.path().join("secret.html"), rep.join("link.html")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nnlab"))
        .args(["train", "--dataset", data.to_str().unwrap()])
        .args(["--hidden", "16", "--epochs", "150", "--batch", "20"])
        .args(["--validation", "40", "--quiet", "--live", "--report"])
        .arg(&rep)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // killed when the test ends, passed or failed
    let mut child = common::Served(child);
    let mut lines = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let (status, page) = common::http(&addr, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    for line in lines.by_ref() {
        if line.unwrap().starts_with("the final report is at") {
            break;
        }
    }
    let (status, page) = common::http(&addr, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "the final page stays still"
    );
    assert!(
        page.contains("test accuracy") && page.contains("Per epoch"),
        "{page}"
    );
    let (status, png) = common::http(&addr, "GET", "/train_cost.png", b"");
    assert_eq!(status, 200);
    assert!(png.starts_with("\u{fffd}PNG"), "a PNG");
    for bad in [
        "/../secret.html",
        "/%2e%2e/secret.html",
        "/..%2fsecret.html",
        "/.hidden.html",
        "/link.html",
        "/nothing.png",
    ] {
        let (status, body) = common::http(&addr, "GET", bad, b"");
        assert_eq!(status, 404, "{bad}: {body}");
    }
    assert_eq!(common::http(&addr, "POST", "/", b"").0, 405);
    // a page of another name (a DNS-rebound site) is refused
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let killed = Command::new("kill")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "a signal after training ends the server cleanly: {status}"
    );
}

/// An ensemble's report charts its members' validation accuracy, or, when no images
/// were held out for validation (as `cnn-best` holds none), their training accuracy:
/// never an empty chart.
#[test]
fn ensemble_report_charts_members_with_or_without_validation() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 60, 20, 4, 4, 3);
    for (held_out, chart) in [
        ("10", "members_validation.png"),
        ("0", "members_training.png"),
    ] {
        let rep = d.path().join(format!("ens{held_out}"));
        let (ok, _, err) = nnlab(&[
            "ensemble",
            "--dataset",
            data.to_str().unwrap(),
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--batch",
            "10",
            "--validation",
            held_out,
            "--members",
            "2",
            "--quiet",
            "--report",
            rep.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        let members: Vec<String> = std::fs::read_dir(&rep)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("members_") && n.ends_with(".png"))
            .collect();
        assert_eq!(members, [chart], "--validation {held_out}");
        // lines drawn: the chart has colour beyond the axes' greys
        let img = image::open(rep.join(chart)).unwrap().to_rgb8();
        let coloured = img
            .pixels()
            .filter(|p| p.0[0].abs_diff(p.0[2]) > 60)
            .count();
        assert!(coloured > 100, "{chart}: {coloured} coloured pixels");
    }
}
