//! The IoT SQL subset (version 2016-03-23): a hand-written tokenizer, a recursive-descent parser
//! and an evaluator over `serde_json::Value`.
//!
//! Supported: `SELECT *`, fields (nested `a.b`, `"quoted-key"`), `AS` aliases, `*, expr AS x`;
//! `FROM '<topic filter>'` with `+` and `#`; `WHERE` with `= <> != < <= > >=`, `AND`, `OR`,
//! `NOT`, parentheses, string / number / boolean / null literals; functions `topic()`,
//! `topic(n)`, `clientid()`, `timestamp()` (ms), `newuuid()`, `startswith(a, b)`.
//!
//! Everything else is refused while parsing with [`ParseError::Unsupported`], naming the
//! feature, so a rule is never run with part of its meaning silently dropped.

use serde_json::{Map, Number, Value};

/// Why a statement or template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Valid IoT SQL that the local rules engine does not implement.
    Unsupported(String),
    /// Not valid SQL at all.
    Syntax(String),
}

/// A function of the supported subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    /// `topic()` (whole topic) or `topic(n)` (1-based segment).
    Topic(Option<usize>),
    /// `clientid()`.
    ClientId,
    /// `timestamp()`, milliseconds since the epoch.
    Timestamp,
    /// `newuuid()`, a random v4 UUID.
    NewUuid,
}

impl Func {
    fn column_name(&self) -> &'static str {
        match self {
            Func::Topic(_) => "topic",
            Func::ClientId => "clientid",
            Func::Timestamp => "timestamp",
            Func::NewUuid => "newuuid",
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// An expression of the subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Value),
    /// A field path into the payload, `a.b.c`.
    Path(Vec<String>),
    /// A function call.
    Func(Func),
    /// A comparison.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `AND`
    And(Box<Expr>, Box<Expr>),
    /// `OR`
    Or(Box<Expr>, Box<Expr>),
    /// `NOT`
    Not(Box<Expr>),
    /// `startswith(input, prefix)`: Boolean. Undefined when either side is Undefined, Null,
    /// an object or an array; numbers and Booleans compare as their text, as IoT SQL converts
    /// them to strings.
    StartsWith(Box<Expr>, Box<Expr>),
}

/// One item of the SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`
    Star,
    /// `expr [AS name]`
    Field {
        /// The expression.
        expr: Expr,
        /// Output key: the alias, the last path segment, or the function name.
        name: String,
    },
}

/// A parsed `SELECT ... FROM ... [WHERE ...]` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SELECT list.
    pub select: Vec<SelectItem>,
    /// The topic filter of FROM.
    pub from: String,
    /// The WHERE condition.
    pub condition: Option<Expr>,
}

impl Statement {
    /// `SELECT *` alone: the payload passes through byte for byte.
    pub fn is_star_only(&self) -> bool {
        matches!(self.select.as_slice(), [SelectItem::Star])
    }

    /// Does evaluating the statement need the payload parsed as JSON?
    pub fn needs_document(&self) -> bool {
        !self.is_star_only() || self.condition.as_ref().is_some_and(Expr::uses_payload)
    }
}

impl Expr {
    /// Does the expression read payload fields?
    pub fn uses_payload(&self) -> bool {
        match self {
            Expr::Path(_) => true,
            Expr::Lit(_) | Expr::Func(_) => false,
            Expr::Cmp(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) | Expr::StartsWith(a, b) => {
                a.uses_payload() || b.uses_payload()
            }
            Expr::Not(a) => a.uses_payload(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Quoted(String),
    Str(String),
    Num(Number),
    Sym(&'static str),
    Other(String),
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Quoted(s) => format!("`\"{s}\"`"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => n.to_string(),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::Other(s) => format!("`{s}`"),
    }
}

fn tokenize(src: &str) -> Result<Vec<Tok>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                i += 1;
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Tok::Num(parse_number(&text)?));
            continue;
        }
        if c == '\'' || c == '"' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ParseError::Syntax(format!(
                            "unterminated {quote}...{quote} literal"
                        )));
                    }
                    Some(&ch) if ch == quote => {
                        if chars.get(i + 1) == Some(&quote) {
                            s.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(if quote == '\'' {
                Tok::Str(s)
            } else {
                Tok::Quoted(s)
            });
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let sym2 = match two.as_str() {
            "<>" => Some("<>"),
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            "||" => Some("||"),
            _ => None,
        };
        if let Some(s) = sym2 {
            out.push(Tok::Sym(s));
            i += 2;
            continue;
        }
        let sym1 = match c {
            '*' => Some("*"),
            ',' => Some(","),
            '.' => Some("."),
            '(' => Some("("),
            ')' => Some(")"),
            '=' => Some("="),
            '<' => Some("<"),
            '>' => Some(">"),
            '-' => Some("-"),
            _ => None,
        };
        match sym1 {
            Some(s) => out.push(Tok::Sym(s)),
            None => out.push(Tok::Other(c.to_string())),
        }
        i += 1;
    }
    Ok(out)
}

fn parse_number(text: &str) -> Result<Number, ParseError> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Number::from(i));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(|| ParseError::Syntax(format!("`{text}` is not a number")))
}

// ---------------------------------------------------------------------------------------------
// Parser

/// Words of IoT SQL (or SQL at large) that the subset does not implement.
const UNSUPPORTED_KEYWORDS: &[&str] = &[
    "CASE", "WHEN", "THEN", "ELSE", "END", "IN", "IS", "LIKE", "BETWEEN", "EXISTS", "GROUP",
    "ORDER", "BY", "LIMIT", "UNION", "DISTINCT", "JOIN", "HAVING", "OFFSET", "VALUE", "CAST",
];

const RESERVED: &[&str] = &["SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT"];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An unexpected token: unsupported if it is a feature we know, a syntax error otherwise.
    fn unexpected(&self, expected: &str) -> ParseError {
        match self.peek() {
            None => ParseError::Syntax(format!("unexpected end of statement, expected {expected}")),
            Some(t) => refusal(t).unwrap_or_else(|| {
                ParseError::Syntax(format!("unexpected {}, expected {expected}", describe(t)))
            }),
        }
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        if !self.eat_kw("SELECT") {
            return Err(self.unexpected("SELECT"));
        }
        let mut select = Vec::new();
        loop {
            select.push(self.select_item()?);
            if !self.eat_sym(",") {
                break;
            }
        }
        if !self.eat_kw("FROM") {
            return Err(self.unexpected("FROM or `,`"));
        }
        let from = match self.next() {
            Some(Tok::Str(s)) => s,
            Some(Tok::Sym("(")) if self.is_kw("SELECT") => {
                return Err(ParseError::Unsupported("nested SELECT".into()));
            }
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("a quoted topic filter after FROM"));
            }
        };
        validate_filter(&from)?;
        let condition = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        if self.peek().is_some() {
            return Err(self.unexpected("the end of the statement"));
        }
        Ok(Statement {
            select,
            from,
            condition,
        })
    }

    fn select_item(&mut self) -> Result<SelectItem, ParseError> {
        if self.eat_sym("*") {
            return Ok(SelectItem::Star);
        }
        let expr = self.expr()?;
        let name = if self.eat_kw("AS") {
            match self.next() {
                Some(Tok::Ident(s)) | Some(Tok::Quoted(s)) => s,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("a name after AS"));
                }
            }
        } else {
            match &expr {
                Expr::Path(p) => p.last().cloned().unwrap_or_default(),
                Expr::Func(f) => f.column_name().to_owned(),
                _ => {
                    return Err(ParseError::Unsupported(
                        "a SELECT expression without an AS alias".into(),
                    ));
                }
            }
        };
        Ok(SelectItem::Field { expr, name })
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat_kw("OR") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat_kw("AND") {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_kw("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let left = self.primary()?;
        let op = match self.peek() {
            Some(Tok::Sym("=")) => CmpOp::Eq,
            Some(Tok::Sym("<>")) | Some(Tok::Sym("!=")) => CmpOp::Ne,
            Some(Tok::Sym("<")) => CmpOp::Lt,
            Some(Tok::Sym("<=")) => CmpOp::Le,
            Some(Tok::Sym(">")) => CmpOp::Gt,
            Some(Tok::Sym(">=")) => CmpOp::Ge,
            Some(t) => {
                if let Some(e) = refusal(t) {
                    return Err(e);
                }
                return Ok(left);
            }
            None => return Ok(left),
        };
        self.pos += 1;
        let right = self.primary()?;
        if let Some(t) = self.peek()
            && matches!(t, Tok::Sym("=" | "<>" | "!=" | "<" | "<=" | ">" | ">="))
        {
            return Err(ParseError::Syntax(
                "chained comparisons need parentheses".into(),
            ));
        }
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Expr::Lit(Value::String(s))),
            Some(Tok::Num(n)) => Ok(Expr::Lit(Value::Number(n))),
            Some(Tok::Sym("-")) => match self.next() {
                Some(Tok::Num(n)) => {
                    let neg = if let Some(i) = n.as_i64() {
                        Number::from(-i)
                    } else {
                        Number::from_f64(-n.as_f64().unwrap_or(0.0))
                            .ok_or_else(|| ParseError::Syntax("bad number".into()))?
                    };
                    Ok(Expr::Lit(Value::Number(neg)))
                }
                _ => Err(ParseError::Unsupported("arithmetic operator `-`".into())),
            },
            Some(Tok::Sym("(")) => {
                if self.is_kw("SELECT") {
                    return Err(ParseError::Unsupported("nested SELECT".into()));
                }
                let e = self.expr()?;
                if !self.eat_sym(")") {
                    return Err(self.unexpected("`)`"));
                }
                Ok(e)
            }
            Some(Tok::Quoted(s)) => self.path(s),
            Some(Tok::Ident(s)) => {
                let upper = s.to_ascii_uppercase();
                match upper.as_str() {
                    "TRUE" => return Ok(Expr::Lit(Value::Bool(true))),
                    "FALSE" => return Ok(Expr::Lit(Value::Bool(false))),
                    "NULL" => return Ok(Expr::Lit(Value::Null)),
                    "SELECT" => return Err(ParseError::Unsupported("nested SELECT".into())),
                    _ => {}
                }
                if UNSUPPORTED_KEYWORDS.contains(&upper.as_str()) {
                    return Err(ParseError::Unsupported(format!("`{upper}`")));
                }
                if RESERVED.contains(&upper.as_str()) {
                    self.pos -= 1;
                    return Err(self.unexpected("an expression"));
                }
                if self.eat_sym("(") {
                    return self.call(&s);
                }
                self.path(s)
            }
            Some(t) => {
                self.pos -= 1;
                Err(refusal(&t).unwrap_or_else(|| self.unexpected("an expression")))
            }
            None => Err(self.unexpected("an expression")),
        }
    }

    fn path(&mut self, first: String) -> Result<Expr, ParseError> {
        let mut path = vec![first];
        while self.eat_sym(".") {
            match self.next() {
                Some(Tok::Ident(s)) | Some(Tok::Quoted(s)) => path.push(s),
                Some(Tok::Sym("*")) => {
                    return Err(ParseError::Unsupported("`.*` wildcard on a field".into()));
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("a field name after `.`"));
                }
            }
        }
        if let Some(Tok::Other(s)) = self.peek()
            && s == "["
        {
            return Err(ParseError::Unsupported("array index `[...]`".into()));
        }
        Ok(Expr::Path(path))
    }

    fn call(&mut self, name: &str) -> Result<Expr, ParseError> {
        let lower = name.to_ascii_lowercase();
        if lower == "startswith" {
            let input = self.expr()?;
            if !self.eat_sym(",") {
                return Err(ParseError::Syntax(
                    "startswith(input, prefix) takes two arguments".into(),
                ));
            }
            let prefix = self.expr()?;
            if !self.eat_sym(")") {
                return Err(ParseError::Syntax(
                    "startswith(input, prefix) takes two arguments".into(),
                ));
            }
            return Ok(Expr::StartsWith(Box::new(input), Box::new(prefix)));
        }
        let mut args = Vec::new();
        if !self.eat_sym(")") {
            loop {
                match self.next() {
                    Some(Tok::Num(n)) => args.push(n),
                    _ => {
                        return Err(
                            if matches!(
                                lower.as_str(),
                                "topic" | "clientid" | "timestamp" | "newuuid"
                            ) {
                                ParseError::Unsupported(format!(
                                    "`{lower}()` with arguments other than a number"
                                ))
                            } else {
                                ParseError::Unsupported(format!("function `{lower}()`"))
                            },
                        );
                    }
                }
                if self.eat_sym(")") {
                    break;
                }
                if !self.eat_sym(",") {
                    return Err(self.unexpected("`,` or `)`"));
                }
            }
        }
        let no_args = |f: Func| {
            if args.is_empty() {
                Ok(Expr::Func(f))
            } else {
                Err(ParseError::Syntax(format!(
                    "`{lower}()` takes no arguments"
                )))
            }
        };
        match lower.as_str() {
            "topic" => match args.as_slice() {
                [] => Ok(Expr::Func(Func::Topic(None))),
                [n] => match n.as_u64() {
                    Some(n) if n >= 1 => Ok(Expr::Func(Func::Topic(Some(n as usize)))),
                    _ => Err(ParseError::Syntax(
                        "topic(n) needs a whole number n >= 1".into(),
                    )),
                },
                _ => Err(ParseError::Syntax(
                    "topic() takes at most one argument".into(),
                )),
            },
            "clientid" => no_args(Func::ClientId),
            "timestamp" => no_args(Func::Timestamp),
            "newuuid" => no_args(Func::NewUuid),
            _ => Err(ParseError::Unsupported(format!("function `{lower}()`"))),
        }
    }
}

/// Tokens that are (recognised) unsupported features wherever they appear.
fn refusal(t: &Tok) -> Option<ParseError> {
    let feature = match t {
        Tok::Sym("*") => "arithmetic operator `*`".to_owned(),
        Tok::Sym("-") => "arithmetic operator `-`".to_owned(),
        Tok::Sym("||") => "string concatenation `||`".to_owned(),
        Tok::Other(s) => match s.as_str() {
            "+" | "/" | "%" => format!("arithmetic operator `{s}`"),
            "[" => "array index `[...]`".to_owned(),
            "{" => "object literal `{...}`".to_owned(),
            "`" => "backtick-quoted names".to_owned(),
            "$" => "substitution `${...}` inside SQL".to_owned(),
            _ => return None,
        },
        Tok::Ident(s) => {
            let upper = s.to_ascii_uppercase();
            if UNSUPPORTED_KEYWORDS.contains(&upper.as_str()) {
                format!("`{upper}`")
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(ParseError::Unsupported(feature))
}

/// Check an MQTT topic filter: `+` and `#` must fill a whole level, `#` only last.
pub fn validate_filter(filter: &str) -> Result<(), ParseError> {
    if filter.is_empty() {
        return Err(ParseError::Syntax("the FROM topic filter is empty".into()));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err(ParseError::Syntax(format!(
                "`#` must be the whole last level of the topic filter `{filter}`"
            )));
        }
        if l.contains('+') && *l != "+" {
            return Err(ParseError::Syntax(format!(
                "`+` must fill a whole level of the topic filter `{filter}`"
            )));
        }
    }
    Ok(())
}

/// Parse a full statement.
pub fn parse_statement(sql: &str) -> Result<Statement, ParseError> {
    let toks = tokenize(sql)?;
    Parser { toks, pos: 0 }.statement()
}

/// Parse the inside of a `${...}` substitution.
pub fn parse_expression(src: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(src)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr()?;
    if p.peek().is_some() {
        return Err(p.unexpected("the end of the substitution"));
    }
    Ok(e)
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// What an expression can see besides the payload.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// The topic as the rule sees it (Basic Ingest prefix removed).
    pub topic: &'a str,
    /// The publisher's client id (or the best local stand-in, see the rules module docs).
    pub client_id: &'a str,
    /// Arrival time, ms since the epoch.
    pub timestamp_ms: u64,
    /// The payload parsed as JSON, if it is JSON.
    pub doc: Option<&'a Value>,
}

/// Evaluate; `None` is IoT SQL's `Undefined`.
pub fn eval(e: &Expr, cx: &EvalContext<'_>) -> Option<Value> {
    match e {
        Expr::Lit(v) => Some(v.clone()),
        Expr::Path(path) => {
            let mut cur = cx.doc?;
            for key in path {
                cur = cur.as_object()?.get(key)?;
            }
            Some(cur.clone())
        }
        Expr::Func(Func::Topic(None)) => Some(Value::String(cx.topic.to_owned())),
        Expr::Func(Func::Topic(Some(n))) => cx
            .topic
            .split('/')
            .nth(n - 1)
            .map(|s| Value::String(s.to_owned())),
        Expr::Func(Func::ClientId) => Some(Value::String(cx.client_id.to_owned())),
        Expr::Func(Func::Timestamp) => Some(Value::Number(Number::from(cx.timestamp_ms))),
        Expr::Func(Func::NewUuid) => Some(Value::String(uuid::Uuid::new_v4().to_string())),
        Expr::Cmp(op, a, b) => {
            let a = eval(a, cx)?;
            let b = eval(b, cx)?;
            compare(*op, &a, &b).map(Value::Bool)
        }
        Expr::And(a, b) => match (truth(eval(a, cx)), truth(eval(b, cx))) {
            (Some(false), _) | (_, Some(false)) => Some(Value::Bool(false)),
            (Some(true), Some(true)) => Some(Value::Bool(true)),
            _ => None,
        },
        Expr::Or(a, b) => match (truth(eval(a, cx)), truth(eval(b, cx))) {
            (Some(true), _) | (_, Some(true)) => Some(Value::Bool(true)),
            (Some(false), Some(false)) => Some(Value::Bool(false)),
            _ => None,
        },
        Expr::Not(a) => truth(eval(a, cx)).map(|b| Value::Bool(!b)),
        Expr::StartsWith(a, b) => {
            let input = as_text(eval(a, cx)?)?;
            let prefix = as_text(eval(b, cx)?)?;
            Some(Value::Bool(input.starts_with(&prefix)))
        }
    }
}

/// A value as `startswith` reads it: strings as they are, numbers and Booleans as their text,
/// anything else (Null, objects, arrays) Undefined.
fn as_text(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn truth(v: Option<Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(b),
        _ => None,
    }
}

/// Comparison as IoT SQL does it: numbers numerically, strings lexically, equality of anything
/// by value; ordering across different types is Undefined.
fn compare(op: CmpOp, a: &Value, b: &Value) -> Option<bool> {
    use std::cmp::Ordering as O;
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => {
            return match op {
                CmpOp::Eq => Some(a == b),
                CmpOp::Ne => Some(a != b),
                _ => None,
            };
        }
    };
    Some(match op {
        CmpOp::Eq => ord == O::Equal,
        CmpOp::Ne => ord != O::Equal,
        CmpOp::Lt => ord == O::Less,
        CmpOp::Le => ord != O::Greater,
        CmpOp::Gt => ord == O::Greater,
        CmpOp::Ge => ord != O::Less,
    })
}

/// Does the WHERE clause hold? Undefined counts as false, as in IoT Core.
pub fn condition_holds(st: &Statement, cx: &EvalContext<'_>) -> bool {
    match &st.condition {
        None => true,
        Some(c) => truth(eval(c, cx)) == Some(true),
    }
}

/// The SELECT result as a JSON value (`None` when it cannot be built: a `*` over a payload
/// that is not a JSON object, combined with other fields).
pub fn project(st: &Statement, cx: &EvalContext<'_>) -> Option<Value> {
    let mut out = Map::new();
    for item in &st.select {
        match item {
            SelectItem::Star => match cx.doc? {
                Value::Object(m) => {
                    for (k, v) in m {
                        out.insert(k.clone(), v.clone());
                    }
                }
                other if st.select.len() == 1 => return Some(other.clone()),
                _ => return None,
            },
            SelectItem::Field { expr, name } => {
                if let Some(v) = eval(expr, cx) {
                    out.insert(name.clone(), v);
                }
            }
        }
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cx<'a>(topic: &'a str, doc: Option<&'a Value>) -> EvalContext<'a> {
        EvalContext {
            topic,
            client_id: "rb-9",
            timestamp_ms: 1234,
            doc,
        }
    }

    fn holds(sql: &str, doc: &Value) -> bool {
        let st = parse_statement(sql).expect("parses");
        condition_holds(&st, &cx("a/b/c", Some(doc)))
    }

    #[test]
    fn parses_star_and_fields_with_aliases() {
        let st = parse_statement(
            "SELECT *, topic(3) AS thingName FROM '$aws/things/+/shadow/update/documents'",
        )
        .expect("parses");
        assert_eq!(st.from, "$aws/things/+/shadow/update/documents");
        assert_eq!(st.select.len(), 2);
        assert!(
            matches!(&st.select[1], SelectItem::Field { name, expr: Expr::Func(Func::Topic(Some(3))) } if name == "thingName")
        );
        let st = parse_statement("select a.b, c as d, timestamp() from 'x/#'").expect("parses");
        let names: Vec<_> = st
            .select
            .iter()
            .map(|s| match s {
                SelectItem::Field { name, .. } => name.clone(),
                SelectItem::Star => "*".into(),
            })
            .collect();
        assert_eq!(names, ["b", "d", "timestamp"]);
    }

    #[test]
    fn each_comparison_operator() {
        let d = json!({"n": 5, "s": "m", "b": true});
        assert!(holds("SELECT * FROM 'a' WHERE n = 5", &d));
        assert!(holds("SELECT * FROM 'a' WHERE n <> 4", &d));
        assert!(holds("SELECT * FROM 'a' WHERE n != 4", &d));
        assert!(holds("SELECT * FROM 'a' WHERE n < 6", &d));
        assert!(holds("SELECT * FROM 'a' WHERE n <= 5", &d));
        assert!(holds("SELECT * FROM 'a' WHERE n > 4.5", &d));
        assert!(holds("SELECT * FROM 'a' WHERE n >= 5", &d));
        assert!(!holds("SELECT * FROM 'a' WHERE n > 5", &d));
        assert!(holds("SELECT * FROM 'a' WHERE s > 'a' AND s < 'z'", &d));
        assert!(holds("SELECT * FROM 'a' WHERE b = true", &d));
        assert!(holds("SELECT * FROM 'a' WHERE n > -1", &d));
    }

    #[test]
    fn boolean_logic_and_parentheses() {
        let d = json!({"n": 5});
        assert!(holds("SELECT * FROM 'a' WHERE n = 1 OR n = 5", &d));
        assert!(!holds("SELECT * FROM 'a' WHERE n = 1 AND n = 5", &d));
        assert!(holds("SELECT * FROM 'a' WHERE NOT n = 1", &d));
        assert!(holds(
            "SELECT * FROM 'a' WHERE NOT (n = 1 OR n = 2) AND (n = 5)",
            &d
        ));
        // AND binds tighter than OR
        assert!(holds(
            "SELECT * FROM 'a' WHERE n = 5 OR n = 1 AND n = 2",
            &d
        ));
    }

    #[test]
    fn undefined_and_mixed_types_are_false() {
        let d = json!({"n": 5, "s": "5"});
        assert!(!holds("SELECT * FROM 'a' WHERE missing = 1", &d));
        assert!(!holds("SELECT * FROM 'a' WHERE NOT missing = 1", &d));
        assert!(!holds("SELECT * FROM 'a' WHERE s < 6", &d));
        assert!(!holds("SELECT * FROM 'a' WHERE s = 5", &d));
    }

    #[test]
    fn nested_fields_and_quoted_keys() {
        let d = json!({"battery": {"end": 37}, "weird-key": {"x": 1}});
        assert!(holds("SELECT * FROM 'a' WHERE battery.end < 40", &d));
        assert!(holds("SELECT * FROM 'a' WHERE \"weird-key\".x = 1", &d));
        let st =
            parse_statement("SELECT battery.end AS e, battery.missing FROM 'a'").expect("parses");
        let out = project(&st, &cx("a", Some(&d))).expect("projects");
        assert_eq!(out, json!({"e": 37}));
    }

    #[test]
    fn topic_functions_and_friends() {
        let st = parse_statement(
            "SELECT topic() AS t, topic(2) AS second, topic(9) AS none, clientid() AS c, timestamp() AS ts, newuuid() AS id FROM '#'",
        )
        .expect("parses");
        let out = project(&st, &cx("robots/rb-1/missions", None)).expect("projects");
        assert_eq!(out["t"], "robots/rb-1/missions");
        assert_eq!(out["second"], "rb-1");
        assert!(out.get("none").is_none());
        assert_eq!(out["c"], "rb-9");
        assert_eq!(out["ts"], 1234);
        assert_eq!(out["id"].as_str().map(str::len), Some(36));
    }

    #[test]
    fn star_with_extra_fields_merges_into_the_document() {
        let d = json!({"a": 1});
        let st = parse_statement("SELECT *, topic(1) AS first FROM '#'").expect("parses");
        assert_eq!(
            project(&st, &cx("x/y", Some(&d))),
            Some(json!({"a": 1, "first": "x"}))
        );
        assert_eq!(project(&st, &cx("x/y", None)), None);
    }

    fn unsupported(sql: &str) -> String {
        match parse_statement(sql) {
            Err(ParseError::Unsupported(f)) => f,
            other => panic!("expected unsupported for {sql}: {other:?}"),
        }
    }

    #[test]
    fn refuses_features_outside_the_subset() {
        assert!(unsupported("SELECT upper(a) AS x FROM 'a'").contains("upper"));
        assert!(unsupported("SELECT CASE a WHEN 1 THEN 2 END AS x FROM 'a'").contains("CASE"));
        assert!(unsupported("SELECT * FROM (SELECT * FROM 'a')").contains("nested SELECT"));
        assert!(unsupported("SELECT a[0] AS x FROM 'a'").contains("array index"));
        assert!(unsupported("SELECT * FROM 'a' WHERE a + 1 > 2").contains("arithmetic"));
        assert!(unsupported("SELECT * FROM 'a' WHERE a IN (1, 2)").contains("IN"));
        assert!(unsupported("SELECT * FROM 'a' WHERE a IS NULL").contains("IS"));
        assert!(unsupported("SELECT * FROM 'a' WHERE a LIKE 'x%'").contains("LIKE"));
        assert!(unsupported("SELECT 1 FROM 'a'").contains("alias"));
        assert!(unsupported("SELECT a FROM 'a' ORDER BY a").contains("ORDER"));
        assert!(unsupported("SELECT a.* FROM 'a'").contains(".*"));
        assert!(unsupported("SELECT * FROM 'a' WHERE a || 'x' = 'y'").contains("concatenation"));
    }

    #[test]
    fn syntax_errors_are_not_unsupported() {
        assert!(matches!(
            parse_statement("SELEC * FROM 'a'"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_statement("SELECT * 'a'"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_statement("SELECT * FROM 'a/#/b'"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_statement("SELECT * FROM 'a' WHERE (a = 1"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_statement("SELECT * FROM 'a' WHERE topic(0) = 'x'"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn string_literals_escape_quotes() {
        let d = json!({"s": "it's"});
        assert!(holds("SELECT * FROM 'a' WHERE s = 'it''s'", &d));
    }

    #[test]
    fn startswith_filters_by_prefix_and_is_undefined_on_missing_fields() {
        let console = json!({"clientId": "iotconsole-1f2e", "eventType": "connected"});
        let robot = json!({"clientId": "rv-000042", "eventType": "connected"});
        let rule = "SELECT * FROM 'a' WHERE NOT startswith(clientId, 'iotconsole-')";
        assert!(!holds(rule, &console));
        assert!(holds(rule, &robot));
        // A missing field is Undefined, and so is NOT of it: the message is dropped.
        assert!(!holds(rule, &json!({"eventType": "connected"})));
        assert!(holds(
            "SELECT * FROM 'a' WHERE startswith(n, '12')",
            &json!({"n": 123})
        ));
        assert!(!holds(
            "SELECT * FROM 'a' WHERE startswith(o, 'x')",
            &json!({"o": {"x": 1}})
        ));
        assert!(holds(
            "SELECT * FROM 'a' WHERE startswith(topic(), 'a/') AND startswith('', '')",
            &json!({})
        ));
        assert!(matches!(
            parse_statement("SELECT * FROM 'a' WHERE startswith(a)"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_statement("SELECT * FROM 'a' WHERE startswith(a, 'b', 'c')"),
            Err(ParseError::Syntax(_))
        ));
    }
}
