//! The lexer and parser of selector text (Kubernetes' `labels.Lexer` and
//! `labels.Parser`).

use super::requirement::validate_key;
use super::{Operator, Requirement, SelectorError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

#[derive(Clone, Copy, Debug)]
struct Item<'a> {
    token: Token,
    literal: &'a str,
    position: usize,
}

impl Item<'_> {
    /// The token as an error message shows it.
    fn found(&self) -> String {
        if self.token == Token::EndOfString {
            "end of string".to_owned()
        } else {
            self.literal.to_owned()
        }
    }
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the text into tokens, the last one always `EndOfString`.
///
/// Special symbols are matched longest first (`!=` before `!`); any other
/// run of characters up to whitespace or a special symbol is an identifier,
/// or the keyword `in`/`notin`. Every special and blank character is ASCII,
/// so the byte offsets are always on character boundaries.
fn lex(text: &str) -> Vec<Item<'_>> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_whitespace(bytes[i]) {
            i += 1;
        }
        let start = i;
        let Some(&c) = bytes.get(i) else {
            items.push(Item {
                token: Token::EndOfString,
                literal: "",
                position: text.len(),
            });
            return items;
        };
        let token = if is_special(c) {
            let next = bytes.get(i + 1).copied();
            let (token, len) = match (c, next) {
                (b'!', Some(b'=')) => (Token::NotEquals, 2),
                (b'=', Some(b'=')) => (Token::DoubleEquals, 2),
                (b'!', _) => (Token::DoesNotExist, 1),
                (b'=', _) => (Token::Equals, 1),
                (b'(', _) => (Token::OpenPar, 1),
                (b')', _) => (Token::ClosedPar, 1),
                (b',', _) => (Token::Comma, 1),
                (b'>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            i += len;
            token
        } else {
            while i < bytes.len() && !is_special(bytes[i]) && !is_whitespace(bytes[i]) {
                i += 1;
            }
            match &text[start..i] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            }
        };
        items.push(Item {
            token,
            literal: &text[start..i],
            position: start,
        });
    }
}

/// Where the parser is: after a key, `in`/`notin` are operators; where a
/// key or value is expected they are plain identifiers (`in in (in)`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    items: Vec<Item<'a>>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn item(&self, context: Context) -> Item<'a> {
        // `lex` always ends with EndOfString; stay on it once reached.
        let index = self.position.min(self.items.len().saturating_sub(1));
        let mut item = self.items.get(index).copied().unwrap_or(Item {
            token: Token::EndOfString,
            literal: "",
            position: 0,
        });
        if context == Context::Values && matches!(item.token, Token::In | Token::NotIn) {
            item.token = Token::Identifier;
        }
        item
    }

    fn lookahead(&self, context: Context) -> Item<'a> {
        self.item(context)
    }

    fn consume(&mut self, context: Context) -> Item<'a> {
        let item = self.item(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let item = self.lookahead(Context::Values);
            match item.token {
                Token::Identifier | Token::DoesNotExist => {
                    requirements.push(self.parse_requirement()?);
                    let next = self.consume(Context::Values);
                    match next.token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let after = self.lookahead(Context::Values);
                            if !matches!(after.token, Token::Identifier | Token::DoesNotExist) {
                                return Err(syntax(after, "identifier after ','", false));
                            }
                        }
                        _ => return Err(syntax(next, "',' or 'end of string'", false)),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => return Err(syntax(item, "!, identifier, or 'end of string'", false)),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, key_operator) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = key_operator {
            return Requirement::build(key.literal, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => vec![self.parse_exact_value()?],
        };
        Requirement::build(key.literal, operator, values)
    }

    /// The key, and the operator when there is none to read: `!key` is
    /// does-not-exist; a key followed by `,` or the end is exists.
    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(Item<'a>, Option<Operator>), SelectorError> {
        let mut item = self.consume(Context::Values);
        let mut operator = None;
        if item.token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            item = self.consume(Context::Values);
        }
        if item.token != Token::Identifier {
            return Err(syntax(item, "identifier", true));
        }
        validate_key(item.literal, Some(item.position))?;
        let next = self.lookahead(Context::Values).token;
        if operator.is_none() && matches!(next, Token::EndOfString | Token::Comma) {
            operator = Some(Operator::Exists);
        }
        Ok((item, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let item = self.consume(Context::KeyAndOperator);
        Ok(match item.token {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals | Token::DoubleEquals => Operator::Equals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => return Err(syntax(item, "in, notin, =, ==, !=, >, <", true)),
        })
    }

    /// `( a, b, c )`; an empty member is the empty value (`()` is `("")`).
    fn parse_values(&mut self) -> Result<Vec<(String, Option<usize>)>, SelectorError> {
        let open = self.consume(Context::Values);
        if open.token != Token::OpenPar {
            return Err(syntax(open, "'('", true));
        }
        let item = self.lookahead(Context::Values);
        match item.token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let close = self.consume(Context::Values);
                if close.token != Token::ClosedPar {
                    return Err(syntax(close, "')'", true));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![(String::new(), Some(item.position))])
            }
            _ => Err(syntax(item, "',', ')' or identifier", true)),
        }
    }

    /// The comma-separated (possibly empty) values up to, not including,
    /// the closing parenthesis.
    fn parse_identifiers_list(&mut self) -> Result<Vec<(String, Option<usize>)>, SelectorError> {
        let mut values = Vec::new();
        loop {
            let item = self.consume(Context::Values);
            match item.token {
                Token::Identifier => {
                    values.push((item.literal.to_owned(), Some(item.position)));
                    let next = self.lookahead(Context::Values);
                    match next.token {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(syntax(next, "',' or ')'", true)),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        // `(,`: an empty value before the comma.
                        values.push((String::new(), Some(item.position)));
                    }
                    let next = self.lookahead(Context::Values);
                    match next.token {
                        // `,)`: an empty value after the comma.
                        Token::ClosedPar => {
                            values.push((String::new(), Some(next.position)));
                            return Ok(values);
                        }
                        // `,,`: an empty value between.
                        Token::Comma => values.push((String::new(), Some(next.position))),
                        _ => {}
                    }
                }
                _ => return Err(syntax(item, "',' or identifier", true)),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; empty when a `,` or the
    /// end follows the operator.
    fn parse_exact_value(&mut self) -> Result<(String, Option<usize>), SelectorError> {
        let item = self.lookahead(Context::Values);
        if matches!(item.token, Token::EndOfString | Token::Comma) {
            return Ok((String::new(), Some(item.position)));
        }
        let item = self.consume(Context::Values);
        if item.token == Token::Identifier {
            Ok((item.literal.to_owned(), Some(item.position)))
        } else {
            Err(syntax(item, "identifier", true))
        }
    }
}

fn syntax(item: Item<'_>, expected: &str, in_requirement: bool) -> SelectorError {
    SelectorError::Syntax {
        position: item.position,
        found: item.found(),
        expected: expected.to_owned(),
        in_requirement,
    }
}

/// The requirements of selector text, in the order written.
pub(super) fn parse_requirements(text: &str) -> Result<Vec<Requirement>, SelectorError> {
    let mut parser = Parser {
        items: lex(text),
        position: 0,
    };
    parser.parse()
}
