//! SPDY/3.1 framing: what `kubectl port-forward` speaks to a kubelet, either
//! on an upgraded HTTP/1.1 connection (`Upgrade: SPDY/3.1`) or tunneled in
//! the binary messages of a WebSocket (`SPDY/3.1+portforward.k8s.io`).
//!
//! Written here rather than taken from a crate: the SPDY crates on
//! crates.io are unmaintained 2014-era HTTP stacks, none of which exposes a
//! plain framer. This is only the wire format (Go's `spdystream` framer is
//! the peer): frames in and out, header blocks compressed with zlib and
//! SPDY/3's preset dictionary, one zlib stream per direction for the whole
//! connection. Flow control (`WINDOW_UPDATE`) is parsed and ignored, as
//! `spdystream` does.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// `FLAG_FIN` of DATA, SYN_STREAM, SYN_REPLY and HEADERS frames.
pub const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the receiver refuses the stream (a limit).
pub const REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: the stream is no longer wanted.
pub const CANCEL: u32 = 5;
/// RST_STREAM status: malformed.
pub const PROTOCOL_ERROR: u32 = 1;

/// Largest payload a frame can say it has (24-bit length).
pub const MAX_FRAME_LENGTH: usize = (1 << 24) - 1;
/// Largest header block accepted once decompressed: headers here are a
/// handful of short names, so anything larger is an attack or a bug.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// A header block: lowercase names, each with its value (several values
/// joined by NUL, as SPDY carries them).
pub type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A new stream opened by the peer.
    SynStream {
        /// Stream id (odd: the client's).
        stream_id: u32,
        /// The stream this one is associated to (0: none).
        associated_to: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// `FLAG_FIN`, `FLAG_UNIDIRECTIONAL` (0x02).
        flags: u8,
        /// Its headers.
        headers: Headers,
    },
    /// The answer to a SYN_STREAM: the stream is accepted.
    SynReply {
        /// Stream id.
        stream_id: u32,
        /// `FLAG_FIN`.
        flags: u8,
        /// Its headers.
        headers: Headers,
    },
    /// The stream is abandoned.
    RstStream {
        /// Stream id.
        stream_id: u32,
        /// Why (`REFUSED_STREAM`, `CANCEL`...).
        status: u32,
    },
    /// Connection settings (flags, id, value).
    Settings {
        /// `FLAG_SETTINGS_CLEAR_SETTINGS` (0x01).
        flags: u8,
        /// (flags, id, value) entries.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A ping; the receiver echoes the peer's ids.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender will accept no more streams.
    GoAway {
        /// The last stream the sender accepted.
        last_good_stream_id: u32,
        /// 0 OK, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// Stream id.
        stream_id: u32,
        /// `FLAG_FIN`.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// Flow control credit (ignored here, as by the peer).
    WindowUpdate {
        /// Stream id (0: the session).
        stream_id: u32,
        /// Bytes added to the window.
        delta: u32,
    },
    /// Payload of a stream.
    Data {
        /// Stream id.
        stream_id: u32,
        /// `FLAG_FIN`: the sender's half is closed.
        flags: u8,
        /// The bytes.
        data: Bytes,
    },
    /// A control frame of a type this framer does not know; the protocol
    /// says to ignore it.
    Unknown {
        /// Its type.
        frame_type: u16,
    },
}

/// What can be wrong with the bytes read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control frame of a version other than 3.
    #[error("unsupported spdy version {0}")]
    Version(u16),
    /// A frame shorter than its type's fixed part.
    #[error("spdy frame of type {frame_type} too short ({length} bytes)")]
    Short {
        /// The frame type.
        frame_type: u16,
        /// Its length.
        length: usize,
    },
    /// The header block could not be inflated, or is malformed.
    #[error("bad spdy header block: {0}")]
    HeaderBlock(String),
    /// The header block could not be deflated (never expected).
    #[error("cannot compress spdy headers: {0}")]
    Compress(String),
}

/// The preset dictionary of SPDY/3 header compression (the spec's 1,423
/// bytes).
pub const DICTIONARY: &[u8] = include_bytes!("spdy_dictionary.bin");

/// Reads frames from bytes as they arrive. Owns the inflate side of the
/// connection's header compression, so one per connection direction.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        Self {
            inflate: Decompress::new(true),
        }
    }

    /// The next whole frame at the front of `buf` (consumed), or `None`
    /// when more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`Error`] when the bytes are not SPDY/3; the connection cannot go on.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = usize::from(buf[5]) << 16 | usize::from(buf[6]) << 8 | usize::from(buf[7]);
        if buf.len() < 8 + length {
            buf.reserve(8 + length - buf.len());
            return Ok(None);
        }
        let head = buf.split_to(8);
        let mut body = buf.split_to(length).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let frame_type = u16::from_be_bytes([head[2], head[3]]);
        let need = match frame_type {
            SYN_STREAM => 10,
            SYN_REPLY | HEADERS | PING => 4,
            RST_STREAM | GOAWAY | WINDOW_UPDATE => 8,
            SETTINGS => 4,
            _ => 0,
        };
        if length < need {
            return Err(Error::Short { frame_type, length });
        }
        let stream_id = |b: &mut Bytes| b.get_u32() & 0x7fff_ffff;
        let frame = match frame_type {
            SYN_STREAM => {
                let stream_id = stream_id(&mut body);
                let associated_to = body.get_u32() & 0x7fff_ffff;
                let priority = body.get_u8() >> 5;
                let _slot = body.get_u8();
                let headers = self.headers(&body)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    headers,
                }
            }
            // The same layout: a stream id, then the header block.
            SYN_REPLY | HEADERS => {
                let stream_id = stream_id(&mut body);
                let headers = self.headers(&body)?;
                if frame_type == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            RST_STREAM => Frame::RstStream {
                stream_id: stream_id(&mut body),
                status: body.get_u32(),
            },
            SETTINGS => {
                let count = body.get_u32() as usize;
                if body.len() < count.saturating_mul(8) {
                    return Err(Error::Short { frame_type, length });
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = body.get_u32();
                        ((word >> 24) as u8, word & 0x00ff_ffff, body.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            PING => Frame::Ping { id: body.get_u32() },
            GOAWAY => Frame::GoAway {
                last_good_stream_id: stream_id(&mut body),
                status: body.get_u32(),
            },
            WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: stream_id(&mut body),
                delta: body.get_u32() & 0x7fff_ffff,
            },
            _ => Frame::Unknown { frame_type },
        };
        Ok(Some(frame))
    }

    /// Inflates one header block (the connection's zlib stream goes on
    /// across frames) and parses it.
    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, Error> {
        let mut out = Vec::with_capacity(256);
        let mut input = compressed;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(Error::HeaderBlock("too large".into()));
                }
                out.reserve(out.len());
            }
            let before = self.inflate.total_in();
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = usize::try_from(self.inflate.total_in() - before)
                .map_err(|e| Error::HeaderBlock(e.to_string()))?;
            input = &input[used..];
            match result {
                Err(e) if e.needs_dictionary().is_some() => self
                    .inflate
                    .set_dictionary(DICTIONARY)
                    .map(|_| ())
                    .map_err(|e| Error::HeaderBlock(e.to_string()))?,
                Err(e) => return Err(Error::HeaderBlock(e.to_string())),
                Ok(Status::StreamEnd) => break,
                // Room left in the output: the inflater has given all it
                // had for this input.
                Ok(_) if out.len() < out.capacity() => {
                    if input.is_empty() {
                        break;
                    }
                    if used == 0 {
                        return Err(Error::HeaderBlock("truncated".into()));
                    }
                }
                Ok(_) => {}
            }
        }
        parse_header_block(&out)
    }
}

fn parse_header_block(mut block: &[u8]) -> Result<Headers, Error> {
    let bad = |what: &str| Error::HeaderBlock(what.to_string());
    let take = |block: &mut &[u8]| -> Result<String, Error> {
        if block.len() < 4 {
            return Err(bad("truncated length"));
        }
        let n = block.get_u32() as usize;
        if block.len() < n {
            return Err(bad("truncated string"));
        }
        let (text, rest) = block.split_at(n);
        *block = rest;
        String::from_utf8(text.to_vec()).map_err(|_| bad("not utf-8"))
    };
    if block.len() < 4 {
        return Err(bad("no pair count"));
    }
    let count = block.get_u32() as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take(&mut block)?;
        let value = take(&mut block)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Writes frames. Owns the deflate side of the connection's header
/// compression, so one per connection direction.
pub struct Encoder {
    deflate: Compress,
    started: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An encoder at the start of a connection.
    pub fn new() -> Self {
        Self {
            deflate: Compress::new(Compression::default(), true),
            started: false,
        }
    }

    /// Appends `frame` to `out`.
    ///
    /// # Errors
    ///
    /// [`Error::Compress`] if zlib fails (not expected).
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), Error> {
        match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.reserve(8 + data.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                put_flags_length(out, *flags, data.len());
                out.put_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let block = self.header_block(headers)?;
                control(out, SYN_STREAM, *flags, 10 + block.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8(priority << 5);
                out.put_u8(0);
                out.put_slice(&block);
            }
            // The same layout: a stream id, then the header block.
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let frame_type = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                let block = self.header_block(headers)?;
                control(out, frame_type, *flags, 4 + block.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control(out, RST_STREAM, 0, 8);
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control(out, SETTINGS, *flags, 4 + 8 * entries.len());
                out.put_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
                for (flags, id, value) in entries {
                    out.put_u32(u32::from(*flags) << 24 | (id & 0x00ff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping { id } => {
                control(out, PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control(out, GOAWAY, 0, 8);
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, WINDOW_UPDATE, 0, 8);
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Unknown { .. } => {}
        }
        Ok(())
    }

    /// The header block, deflated on the connection's zlib stream and
    /// sync-flushed so the peer can inflate it alone.
    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, Error> {
        let mut plain = Vec::with_capacity(64);
        plain.put_u32(u32::try_from(headers.len()).unwrap_or(u32::MAX));
        for (name, value) in headers {
            for text in [name.to_ascii_lowercase().as_bytes(), value.as_bytes()] {
                plain.put_u32(u32::try_from(text.len()).unwrap_or(u32::MAX));
                plain.put_slice(text);
            }
        }
        if !self.started {
            self.deflate
                .set_dictionary(DICTIONARY)
                .map_err(|e| Error::Compress(e.to_string()))?;
            self.started = true;
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = plain.as_slice();
        loop {
            out.reserve(64);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Compress(e.to_string()))?;
            let used = usize::try_from(self.deflate.total_in() - before)
                .map_err(|e| Error::Compress(e.to_string()))?;
            input = &input[used..];
            // A sync flush is complete when it left room in the output.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(out)
    }
}

fn control(out: &mut BytesMut, frame_type: u16, flags: u8, length: usize) {
    out.reserve(8 + length);
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    put_flags_length(out, flags, length);
}

fn put_flags_length(out: &mut BytesMut, flags: u8, length: usize) {
    let length = u32::try_from(length.min(MAX_FRAME_LENGTH)).unwrap_or(0);
    out.put_u32(u32::from(flags) << 24 | length);
}

/// A header's value (names compare lowercase).
pub fn header<'h>(headers: &'h Headers, name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::{header, Decoder, Encoder, Frame, DICTIONARY};

    fn headers(pairs: &[(&str, &str)]) -> super::Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_dictionary_is_the_specs() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\x00\x00\x00\x07options"));
        assert!(DICTIONARY.ends_with(b"enq=0."));
    }

    /// A SYN_STREAM as kubectl sends it, made by C zlib (Python's, the
    /// same deflate with the same preset dictionary Go's framer uses):
    /// stream 1, headers `streamtype: error`, `port: 80`, `requestid: 0`.
    /// Then a second one on the same zlib stream (stream 3, `data`).
    #[test]
    fn reads_the_header_blocks_a_zlib_peer_wrote() {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(KUBECTL_SYN_STREAMS);
        let first = decoder.decode(&mut buf).unwrap().unwrap();
        let second = decoder.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(
            first,
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            }
        );
        let Frame::SynStream {
            stream_id, headers, ..
        } = second
        else {
            panic!("{second:?}")
        };
        assert_eq!(stream_id, 3);
        assert_eq!(header(&headers, "streamType"), Some("data"));
    }

    /// Frames made by [`Encoder`] read back through [`Decoder`], header
    /// blocks sharing one zlib stream, split at every byte boundary.
    #[test]
    fn every_frame_round_trips_whatever_the_chunking() {
        let frames = vec![
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 2,
                flags: 1,
                headers: headers(&[("streamtype", "data"), ("port", "8080")]),
            },
            Frame::SynReply {
                stream_id: 3,
                flags: 0,
                headers: headers(&[("a", "b")]),
            },
            Frame::Data {
                stream_id: 3,
                flags: 1,
                data: Bytes::from_static(b"hello"),
            },
            Frame::RstStream {
                stream_id: 5,
                status: 3,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536)],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
            Frame::Headers {
                stream_id: 3,
                flags: 0,
                headers: headers(&[("x", "y\0z")]),
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1000,
            },
        ];
        let mut encoder = Encoder::new();
        let mut wire = BytesMut::new();
        for f in &frames {
            encoder.encode(f, &mut wire).unwrap();
        }
        for step in [1, 3, 7, wire.len()] {
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, frames, "chunks of {step}");
        }
    }

    #[test]
    fn a_control_frame_of_another_version_is_refused() {
        let mut buf = BytesMut::from(&b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"[..]);
        assert!(Decoder::new().decode(&mut buf).is_err());
    }

    #[test]
    fn an_unknown_control_frame_is_skipped() {
        let mut buf = BytesMut::from(
            &b"\x80\x03\x00\x0a\x00\x00\x00\x02ab\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x09"
                [..],
        );
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(Frame::Unknown { frame_type: 10 })
        );
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(Frame::Ping { id: 9 })
        );
    }

    #[test]
    fn a_header_block_that_inflates_to_garbage_is_an_error() {
        let mut buf = BytesMut::from(
            &b"\x80\x03\x00\x02\x00\x00\x00\x08\x00\x00\x00\x01\xff\xff\xff\xff"[..],
        );
        assert!(Decoder::new().decode(&mut buf).is_err());
    }

    const KUBECTL_SYN_STREAMS: &[u8] = include_bytes!("spdy_test_syn_streams.bin");
}
