//! Memory checked before it is allocated: what something would take, estimated in
//! floating point from its shapes (so a width of 2^64 - 1 overflows nothing), against
//! what this machine has available. A request beyond it is refused with both figures,
//! instead of the allocator aborting the process or the system swapping it to a halt.
//! What a net or a run takes is estimated in `footprint`.

use crate::error::{Error, Result};

/// Bytes of memory this machine has available now (Linux `MemAvailable`), if known.
pub fn available_bytes() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// `n` bytes for people: "about 3.2 GB", "about 512 MB", "over 10^18 bytes".
pub fn human(n: f64) -> String {
    match n {
        n if !n.is_finite() || n >= 1e18 => "over 10^18 bytes".to_string(),
        n if n >= 1e9 => format!("about {:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("about {:.0} MB", n / 1e6),
        n => format!("about {:.0} kB", n / 1e3),
    }
}

/// Refuses `need` bytes for `what` when they exceed what the machine has available
/// (when that is known); the error gives both figures and `hint`.
pub fn check_fits(what: &str, need: f64, hint: &str) -> Result<()> {
    let Some(have) = available_bytes() else {
        return Ok(());
    };
    if need.is_finite() && need <= have {
        return Ok(());
    }
    Err(Error::TooBig {
        what: what.to_string(),
        need: human(need),
        have: human(have),
        hint: hint.to_string(),
    })
}
