//! Messages are user language: metrics are named by `Metric::name` ("l2", "ip", "cosine", the
//! strings Python accepts), never by Rust `Debug` output.

use valori_kernel::{Error, Invalid, Metric};

const ALL: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

#[test]
fn metric_names_are_stable_and_display_them() {
    let names: Vec<&str> = ALL.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["l2", "ip", "cosine"]);
    for m in ALL {
        assert_eq!(m.to_string(), m.name());
    }
}

#[test]
fn metric_mismatch_names_metrics_in_user_language() {
    for stored in ALL {
        for given in ALL {
            let msg = Error::InvalidInput(Invalid::MetricMismatch { stored, given }).to_string();
            assert!(
                msg.contains(&format!("the {} metric", stored.name()))
                    && msg.contains(&format!("the {} metric", given.name())),
                "{msg}"
            );
            for debug in ["L2", "InnerProduct", "Cosine", "Some("] {
                assert!(!msg.contains(debug), "Debug text {debug:?} in {msg:?}");
            }
        }
    }
}
