//! AWS IoT Core's connection and publish quotas, which a run against IoT Core stays within, and
//! what a run achieved against them.
//!
//! - CONNECT requests per second per account: 500 in us-east-1, us-west-2 and eu-west-1, 100 in
//!   the other regions (adjustable: `--connect-quota` for a raised quota);
//! - CONNECT requests per second per client id: 1 (a robot reconnecting waits a second);
//! - inbound PUBLISH requests per second per connection: 100.

use std::sync::Mutex;

use crate::error::SimError;

/// CONNECTs per second per client id.
pub const CONNECTS_PER_CLIENT_PER_S: f64 = 1.0;
/// Inbound publishes per second per connection.
pub const PUBLISHES_PER_CONNECTION_PER_S: f64 = 100.0;

/// The default account CONNECT quota of `region`, per second.
pub fn connect_quota(region: &str) -> f64 {
    match region {
        "us-east-1" | "us-west-2" | "eu-west-1" => 500.0,
        _ => 100.0,
    }
}

/// The region of an IoT Core ATS endpoint (`xxxx-ats.iot.<region>.amazonaws.com`).
pub fn region_of_endpoint(host: &str) -> Option<&str> {
    let rest = host.split_once(".iot.")?.1;
    let region = rest.split('.').next()?;
    (!region.is_empty()).then_some(region)
}

/// The fleet's CONNECT rate for a run: `--connect-rate`, or against IoT Core the account's quota
/// (`--connect-quota`, else the region's default), refused when above it; 100/s elsewhere.
pub fn connect_rate(
    requested: Option<f64>,
    iot_core_region: Option<&str>,
    raised_quota: Option<f64>,
) -> Result<f64, SimError> {
    let Some(region) = iot_core_region else {
        return Ok(requested.unwrap_or(100.0));
    };
    let quota = raised_quota.unwrap_or_else(|| connect_quota(region));
    match requested {
        None => Ok(quota),
        Some(r) if r <= quota => Ok(r),
        Some(r) => Err(SimError::arg(
            "--connect-rate",
            format!(
                "{r}/s is above IoT Core's CONNECT quota of {quota}/s per account in {region}; pass --connect-quota with a raised quota"
            ),
        )),
    }
}

/// Counts events per whole second of a run and keeps the busiest second: what a run achieved
/// against a per-second quota. Events come in time order (a limiter's slots, one robot's
/// publishes); a late one counts into the current second.
#[derive(Debug, Default)]
pub struct PeakRate {
    /// (current second, events in it, the busiest second's events).
    state: Mutex<(u64, u64, u64)>,
}

impl Clone for PeakRate {
    fn clone(&self) -> Self {
        let st = self.state.lock().map(|s| *s).unwrap_or_default();
        PeakRate {
            state: Mutex::new(st),
        }
    }
}

impl PeakRate {
    /// One event at `at_s` seconds into the run.
    pub fn count(&self, at_s: f64) {
        if let Ok(mut st) = self.state.lock() {
            let second = at_s.max(0.0) as u64;
            if second > st.0 {
                st.2 = st.2.max(st.1);
                *st = (second, 0, st.2);
            }
            st.1 += 1;
        }
    }

    /// The most events in one second.
    pub fn peak(&self) -> u64 {
        self.state.lock().map(|st| st.1.max(st.2)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_quota_follows_the_region_of_the_endpoint() {
        let host = "a1b2c3-ats.iot.eu-west-1.amazonaws.com";
        assert_eq!(region_of_endpoint(host), Some("eu-west-1"));
        assert_eq!(connect_quota("eu-west-1"), 500.0);
        assert_eq!(connect_quota("ap-south-1"), 100.0);
        assert_eq!(region_of_endpoint("127.0.0.1"), None);
        assert_eq!(connect_rate(None, Some("ap-south-1"), None).unwrap(), 100.0);
        assert_eq!(
            connect_rate(None, Some("us-east-1"), Some(2_000.0)).unwrap(),
            2_000.0
        );
        let e = connect_rate(Some(600.0), Some("us-east-1"), None).unwrap_err();
        assert!(e.to_string().contains("--connect-quota"), "{e}");
        assert_eq!(connect_rate(Some(600.0), None, None).unwrap(), 600.0);
    }

    #[test]
    fn the_peak_is_the_busiest_second() {
        let p = PeakRate::default();
        for i in 0..30 {
            p.count(f64::from(i) * 0.1); // 10 a second for 3 s
        }
        for _ in 0..25 {
            p.count(3.5);
        }
        for i in 0..100 {
            p.count(4.0 + f64::from(i) * 0.5); // 2 a second for 50 s
        }
        assert_eq!(p.peak(), 25);
    }
}
