//! Duration flags: `250ms`, `90s`, `5m` (or `5min`), `2h`, combinations such as `1h30m`,
//! decimals such as `1.5s`, or a plain number of seconds.

use std::time::Duration;

/// Parses a duration flag. Every number but a lone one needs a unit (`ms`, `s`, `m`, `min`,
/// `h`); the error names what is wrong, for clap to print beside the flag.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration; use e.g. 500ms, 30s, 5m, 1h30m".into());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "`{text}` is not a duration; use e.g. 500ms, 30s, 5m, 1h30m"
            ));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("`{}` in `{text}` is not a number", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += number
            * match unit {
                "ms" => 0.001,
                "s" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "" => {
                    return Err(format!(
                        "`{text}`: the last number has no unit (use ms, s, m or h)"
                    ));
                }
                other => {
                    return Err(format!(
                        "`{text}`: unknown unit `{other}` (use ms, s, m or h)"
                    ));
                }
            };
    }
    seconds(total, text)
}

fn seconds(secs: f64, text: &str) -> Result<Duration, String> {
    if secs.is_finite() && secs >= 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("`{text}` is not a positive duration"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units_and_combinations() {
        let d = |s: &str| parse_duration(s).unwrap();
        assert_eq!(d("90"), Duration::from_secs(90));
        assert_eq!(d("90s"), Duration::from_secs(90));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("5m"), Duration::from_secs(300));
        assert_eq!(d("5min"), Duration::from_secs(300));
        assert_eq!(d("2h"), Duration::from_secs(7200));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1m30s500ms"), Duration::from_millis(90_500));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d(" 7 "), Duration::from_secs(7));
    }

    #[test]
    fn bad_input_names_the_problem() {
        let e = |s: &str| parse_duration(s).err().unwrap_or_default();
        assert!(e("5x").contains("unknown unit `x`"), "{}", e("5x"));
        assert!(e("1h5").contains("no unit"), "{}", e("1h5"));
        assert!(
            e("5 parsecs").contains("unknown unit"),
            "{}",
            e("5 parsecs")
        );
        assert!(e("-1s").contains("not a duration"), "{}", e("-1s"));
        assert!(e("-1").contains("not a positive duration"), "{}", e("-1"));
        assert!(e("").contains("empty"), "{}", e(""));
        assert!(e("s").contains("not a duration"), "{}", e("s"));
    }

    proptest! {
        #[test]
        fn hours_minutes_seconds_add_up(h in 0u64..100, m in 0u64..60, s in 0u64..60) {
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(h * 3600 + m * 60 + s)));
        }
    }
}
