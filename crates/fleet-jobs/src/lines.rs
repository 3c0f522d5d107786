//! The input file as lines, and a byte cursor that always sits on a line boundary.
//!
//! The worker reads the file with ranged GETs from a cursor and never holds more than a chunk
//! and a partial line. [`LineBuffer`] takes the bytes as they come and hands out whole lines:
//! a line ends at `\n` (a `\r` before it is dropped, so CRLF files read the same), and at the end
//! of the file the last bytes are a line even without a newline. A [`Cursor`] is the byte offset
//! just after a line's terminator and the number of the next data line, so a retried or
//! continued invocation starts exactly at the next line.
//!
//! A line is one robot: JSONL `{"robotId": "rb-1", "params": {...}}`, or CSV with a header row
//! naming a `robotId` column (the other columns are parameters, as strings). Blank lines are
//! skipped. A line that is not UTF-8, not JSON, names no valid robot id, or is longer than
//! [`MAX_LINE`] is a bad line: reported with its number and reason, never fatal.

use fleet_core::RobotId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest line accepted (bytes, without its terminator).
pub const MAX_LINE: usize = 64 * 1024;

/// Where the next invocation starts: a byte offset on a line boundary, and the number of the
/// next data line (0-based; a CSV header is not a data line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    pub offset: u64,
    pub line: u64,
}

/// The input's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Jsonl,
    Csv,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(InputFormat::Jsonl),
            "csv" => Ok(InputFormat::Csv),
            _ => Err(format!("input format {s:?}: expected jsonl or csv")),
        }
    }
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Byte offset of its first byte.
    pub start: u64,
    /// Byte offset just after its terminator (the cursor once this line is done).
    pub end: u64,
    /// The line's text without its terminator, or why it has none.
    pub text: Result<String, String>,
}

/// Whole lines out of bytes that arrive in chunks.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    base: u64,
    /// Inside a line longer than [`MAX_LINE`]: its start, until its newline is found.
    overlong: Option<u64>,
}

impl LineBuffer {
    /// A buffer whose next byte is at file offset `offset` (a line boundary).
    pub fn new(offset: u64) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            base: offset,
            overlong: None,
        }
    }

    /// The offset of the next byte expected.
    pub fn next_offset(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Bytes held that are not yet a whole line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Adds the next bytes of the file.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole line, if the bytes so far hold one; at the end of the file (`eof`) the
    /// bytes left are the last line.
    pub fn next_line(&mut self, eof: bool) -> Option<Line> {
        loop {
            let newline = self.buf.iter().position(|b| *b == b'\n');
            if let Some(start) = self.overlong {
                // Drop bytes until the overlong line's newline, then report it.
                match newline {
                    Some(i) => {
                        self.consume(i + 1);
                        self.overlong = None;
                        return Some(Line {
                            start,
                            end: self.base,
                            text: Err(format!("the line is longer than {MAX_LINE} bytes")),
                        });
                    }
                    None if eof => {
                        let n = self.buf.len();
                        self.consume(n);
                        self.overlong = None;
                        return Some(Line {
                            start,
                            end: self.base,
                            text: Err(format!("the line is longer than {MAX_LINE} bytes")),
                        });
                    }
                    None => {
                        let n = self.buf.len();
                        self.consume(n);
                        return None;
                    }
                }
            }
            let (len, take) = match newline {
                Some(i) => (i, i + 1),
                None if eof && !self.buf.is_empty() => (self.buf.len(), self.buf.len()),
                None if self.buf.len() > MAX_LINE => {
                    self.overlong = Some(self.base);
                    continue;
                }
                None => return None,
            };
            if len > MAX_LINE {
                self.overlong = Some(self.base);
                continue;
            }
            let start = self.base;
            let mut raw = &self.buf[..len];
            if raw.last() == Some(&b'\r') {
                raw = &raw[..raw.len() - 1];
            }
            let text = std::str::from_utf8(raw)
                .map(str::to_string)
                .map_err(|e| format!("the line is not UTF-8 ({e})"));
            self.consume(take);
            return Some(Line {
                start,
                end: self.base,
                text,
            });
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.base += n as u64;
    }
}

/// One robot and its parameters, from a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub robot_id: RobotId,
    pub params: Map<String, Value>,
}

/// The CSV header: the column names, one of them `robotId`.
pub fn csv_header(text: &str) -> Result<Vec<String>, String> {
    let names = csv_fields(text)?;
    if !names.iter().any(|n| n == "robotId") {
        return Err(format!(
            "the CSV header {text:?} has no robotId column (the first row names the columns)"
        ));
    }
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(format!("CSV header column {} has no name", i + 1));
        }
        if names[..i].contains(n) {
            return Err(format!("CSV header names column {n:?} twice"));
        }
    }
    Ok(names)
}

fn csv_fields(text: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Ok(Vec::new()),
        Err(e) => return Err(format!("not a CSV row: {e}")),
    }
    let mut rest = csv::StringRecord::new();
    if reader.read_record(&mut rest).unwrap_or(false) {
        return Err("a quoted CSV field holds a line break (one row per line)".into());
    }
    Ok(record.iter().map(|f| f.trim().to_string()).collect())
}

/// The robot of a JSONL line, or of a CSV line with `header`. `Ok(None)` for a blank line.
pub fn parse_line(header: Option<&[String]>, text: &str) -> Result<Option<Target>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match header {
        None => {
            let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            target_from_object(&v).map(Some)
        }
        Some(header) => {
            let fields = csv_fields(text)?;
            if fields.len() != header.len() {
                return Err(format!(
                    "{} fields, the header has {}",
                    fields.len(),
                    header.len()
                ));
            }
            let row: Map<String, Value> = header
                .iter()
                .cloned()
                .zip(fields.into_iter().map(Value::String))
                .collect();
            target_from_row(&row).map(Some)
        }
    }
}

/// A JSONL object `{"robotId": ..., "params": {...}}` (the Distributed Map hands the worker
/// these objects, parsed by its ItemReader).
pub fn target_from_object(v: &Value) -> Result<Target, String> {
    let o = v
        .as_object()
        .ok_or("a line must be a JSON object with robotId")?;
    if let Some(k) = o.keys().find(|k| *k != "robotId" && *k != "params") {
        return Err(format!(
            "unknown field {k:?} (a line has robotId and optionally params)"
        ));
    }
    let params = match o.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err("params must be an object".into()),
    };
    Ok(Target {
        robot_id: robot(o.get("robotId"))?,
        params,
    })
}

/// A CSV row as the ItemReader gives it: column name to string; every column but `robotId` is
/// a parameter. Empty cells are left out.
pub fn target_from_row(row: &Map<String, Value>) -> Result<Target, String> {
    let params = row
        .iter()
        .filter(|(k, v)| *k != "robotId" && v.as_str() != Some(""))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Target {
        robot_id: robot(row.get("robotId"))?,
        params,
    })
}

fn robot(v: Option<&Value>) -> Result<RobotId, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or("robotId is missing or not a string")?;
    RobotId::parse(s).map_err(|e| format!("robotId {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(bytes: &[u8], chunk: usize) -> Vec<Line> {
        let mut b = LineBuffer::new(0);
        let mut out = Vec::new();
        for part in bytes.chunks(chunk.max(1)) {
            b.push(part);
            while let Some(l) = b.next_line(false) {
                out.push(l);
            }
        }
        while let Some(l) = b.next_line(true) {
            out.push(l);
        }
        out
    }

    #[test]
    fn crlf_and_a_missing_final_newline_end_lines_on_boundaries() {
        for chunk in [1, 2, 3, 7, 100] {
            let lines = all_lines(b"a\r\nbb\n\r\nccc", chunk);
            let got: Vec<(u64, u64, String)> = lines
                .iter()
                .map(|l| (l.start, l.end, l.text.clone().expect("utf-8")))
                .collect();
            assert_eq!(
                got,
                vec![
                    (0, 3, "a".into()),
                    (3, 6, "bb".into()),
                    (6, 8, "".into()),
                    (8, 11, "ccc".into())
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn an_overlong_line_is_one_bad_line_and_the_next_line_is_whole() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\n{\"robotId\":\"rb-1\"}\n");
        let lines = all_lines(&input, 4096);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0]
                .text
                .as_ref()
                .expect_err("overlong")
                .contains("longer")
        );
        assert_eq!(lines[0].end, MAX_LINE as u64 + 11);
        assert_eq!(lines[1].text.as_deref(), Ok("{\"robotId\":\"rb-1\"}"));
    }

    #[test]
    fn jsonl_and_csv_lines_give_the_robot_and_its_params() {
        let t = parse_line(None, r#"{"robotId":"rb-1","params":{"at":"10:00"}}"#)
            .expect("ok")
            .expect("a robot");
        assert_eq!(t.robot_id.as_ref(), "rb-1");
        assert_eq!(t.params["at"], "10:00");
        let header = csv_header("robotId,channel").expect("header");
        let t = parse_line(Some(&header), "rb-2,\"beta\"")
            .expect("ok")
            .expect("a robot");
        assert_eq!(
            (t.robot_id.as_ref(), &t.params["channel"]),
            ("rb-2", &Value::from("beta"))
        );
        assert_eq!(parse_line(Some(&header), "  ").expect("blank"), None);
        assert!(
            parse_line(Some(&header), "rb-3")
                .expect_err("1 field")
                .contains("2")
        );
        assert!(
            parse_line(None, "{\"robot\":1}")
                .expect_err("unknown")
                .contains("robot")
        );
        assert!(
            parse_line(None, "{\"robotId\":\"a b\"}")
                .expect_err("bad id")
                .contains("robotId")
        );
        assert!(
            csv_header("id,channel")
                .expect_err("no robotId")
                .contains("robotId")
        );
    }
}
