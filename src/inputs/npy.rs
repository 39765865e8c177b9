//! NPY format 1.0/2.0/3.0 (numpy's `format.py` documents it) and `.npz` archives of them.
//!
//! Read: `<f4`, `<f8` (narrowed to float32, the only float type of [`Tensor`]: inputs are fed to float32 models),
//! `<f2` (widened to float32, exact), `<i8`, `<i4`, `|u1`, in C or Fortran order (Fortran is transposed to C order).
//! Refused with the reason: big-endian and native-order descriptors, booleans, other integer widths, complex,
//! strings, objects and structured dtypes. Written: v1.0 (v2.0 when the header outgrows 64 KiB), C order, the
//! tensor's own dtype.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::{InputError, NpySource, check_readable};
use crate::tensor::{DType, Tensor, TensorData};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy itself refuses headers over 10 000 bytes unless told otherwise; 1 MiB stops a corrupt length from
/// turning into a huge allocation while leaving room for any real header.
const MAX_HEADER_LEN: u64 = 1 << 20;
const CHUNK: usize = 64 * 1024;

/// Reads one `.npy` file.
pub fn read_npy(path: &Path) -> Result<Tensor, InputError> {
    check_readable(path)?;
    let io_err = |source| InputError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let source = NpySource { path: path.to_path_buf(), member: None };
    read_npy_stream(&mut BufReader::new(file), StreamLen::Known(len), &source)
}

/// Reads every array of an `.npz` archive (numpy `savez`, stored, or `savez_compressed`, deflated): member
/// `NAME.npy` becomes `(NAME, tensor)`, in archive order.
pub fn load_npz(path: &Path) -> Result<Vec<(String, Tensor)>, InputError> {
    check_readable(path)?;
    let file = File::open(path).map_err(|source| InputError::Io { path: path.to_path_buf(), source })?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|source| InputError::NpzArchive { path: path.to_path_buf(), source })?;
    let member_err = |member: &str, problem: String| InputError::NpzMember {
        path: path.to_path_buf(),
        member: member.to_string(),
        problem,
    };
    let mut arrays: Vec<(String, Tensor)> = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut entry =
            archive.by_index(index).map_err(|e| member_err(&format!("#{index}"), format!("cannot open: {e}")))?;
        let member = match entry.name() {
            Ok(name) => name.into_owned(),
            Err(e) => return Err(member_err(&format!("#{index}"), format!("unreadable name: {e}"))),
        };
        if entry.is_dir() {
            continue;
        }
        let Some(name) = member.strip_suffix(".npy") else {
            return Err(member_err(&member, "not an .npy member (npz archives hold only NAME.npy files)".into()));
        };
        if arrays.iter().any(|(n, _)| n == name) {
            return Err(member_err(&member, "appears twice in the archive".into()));
        }
        let source = NpySource { path: path.to_path_buf(), member: Some(member.clone()) };
        let size = entry.size();
        // The zip crate checks the CRC when the member is read to its end; a mismatch surfaces as an I/O error.
        let tensor = read_npy_stream(&mut entry, StreamLen::Declared(size), &source)?;
        arrays.push((name.to_string(), tensor));
    }
    if arrays.is_empty() {
        return Err(InputError::NpzEmpty { path: path.to_path_buf() });
    }
    Ok(arrays)
}

/// Writes `tensor` as an `.npy` stream (C order, little-endian, its own dtype).
pub fn write_npy<W: Write>(writer: &mut W, tensor: &Tensor) -> io::Result<()> {
    let descr = match tensor.dtype() {
        DType::F32 => "<f4",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::U8 => "|u1",
    };
    let shape = match tensor.shape() {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        dims => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy aligns the data to 64 bytes so that it can be memory-mapped; readers rely on nothing else.
    let padded = |prefix: usize| (prefix + header.len() + 1).div_ceil(64) * 64 - prefix;
    let (version, prefix) = if padded(10) <= usize::from(u16::MAX) { (1u8, 10) } else { (2u8, 12) };
    let padding = padded(prefix) - header.len() - 1;
    header.extend(std::iter::repeat_n(' ', padding));
    header.push('\n');
    writer.write_all(MAGIC)?;
    writer.write_all(&[version, 0])?;
    if version == 1 {
        let len = u16::try_from(header.len()).map_err(io::Error::other)?;
        writer.write_all(&len.to_le_bytes())?;
    } else {
        let len = u32::try_from(header.len()).map_err(io::Error::other)?;
        writer.write_all(&len.to_le_bytes())?;
    }
    writer.write_all(header.as_bytes())?;
    match tensor.data() {
        TensorData::F32(v) => write_elems(writer, v, |x| x.to_le_bytes()),
        TensorData::I64(v) => write_elems(writer, v, |x| x.to_le_bytes()),
        TensorData::I32(v) => write_elems(writer, v, |x| x.to_le_bytes()),
        TensorData::U8(v) => writer.write_all(v),
    }
}

/// Writes `tensor` to an `.npy` file, whole or not at all.
pub fn write_npy_file(path: &Path, tensor: &Tensor) -> Result<(), InputError> {
    let write_err = |source| InputError::Write { path: path.to_path_buf(), source };
    let mut bytes = Vec::with_capacity(128 + tensor.len() * 8);
    write_npy(&mut bytes, tensor).map_err(write_err)?;
    crate::model::write_atomically(path, &bytes).map_err(write_err)
}

fn write_elems<W: Write, T: Copy, const N: usize>(
    writer: &mut W,
    values: &[T],
    to_bytes: impl Fn(T) -> [u8; N],
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(CHUNK);
    for chunk in values.chunks(CHUNK / N) {
        buf.clear();
        for &v in chunk {
            buf.extend_from_slice(&to_bytes(v));
        }
        writer.write_all(&buf)?;
    }
    Ok(())
}

/// Which element type the bytes hold and what it becomes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Element {
    F4,
    F8,
    F2,
    I8,
    I4,
    U1,
}

impl Element {
    /// The tensor type it is read as (float64 and float16 become float32).
    fn dtype(self) -> DType {
        match self {
            Element::F4 | Element::F8 | Element::F2 => DType::F32,
            Element::I8 => DType::I64,
            Element::I4 => DType::I32,
            Element::U1 => DType::U8,
        }
    }

    fn size(self) -> u64 {
        match self {
            Element::U1 => 1,
            Element::F2 => 2,
            Element::F4 | Element::I4 => 4,
            Element::F8 | Element::I8 => 8,
        }
    }
}

fn element_of(descr: &str) -> Result<Element, String> {
    let supported = "supported: <f4, <f8 (read as float32), <f2, <i8, <i4, |u1";
    let mut chars = descr.chars();
    let order = chars.next();
    let code = chars.as_str();
    if order == Some('>') {
        return Err(format!(
            "big-endian data is not read; save it little-endian (arr.astype(arr.dtype.newbyteorder('<'))); {supported}"
        ));
    }
    if !matches!(order, Some('<' | '|')) {
        return Err(format!("the byte order is not stated (expected a '<' or '|' prefix); {supported}"));
    }
    let element = match (order, code) {
        (Some('<'), "f4") => Element::F4,
        (Some('<'), "f8") => Element::F8,
        (Some('<'), "f2") => Element::F2,
        (Some('<'), "i8") => Element::I8,
        (Some('<'), "i4") => Element::I4,
        (Some('|'), "u1") => Element::U1,
        (_, "b1") => return Err(format!("boolean arrays are not model inputs here; save them as uint8; {supported}")),
        _ => return Err(supported.to_string()),
    };
    Ok(element)
}

/// How much is known about a stream's length before reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StreamLen {
    /// A file's size: the bytes are there, so the whole array may be reserved at once.
    Known(u64),
    /// A size someone declared (a zip member's header): checked, but never trusted for allocation.
    Declared(u64),
}

/// Reads one npy stream. A known or declared length lets a truncated or padded stream be told apart before the
/// data is read.
/// Reads the preamble and header dictionary: the header, its element type, and the file length and header end
/// (the data follows). Shared by the full reader and [`read_npy_header`].
fn read_header<R: Read>(r: &mut R, len: StreamLen, file: &NpySource) -> Result<ParsedHeader, InputError> {
    let bad = |problem: String| InputError::BadNpyHeader { file: file.clone(), problem };
    let io_err = |e: io::Error| match file.member.as_ref() {
        None => InputError::Io { path: file.path.clone(), source: e },
        Some(member) => InputError::NpzMember {
            path: file.path.clone(),
            member: member.clone(),
            problem: format!("cannot read: {e}"),
        },
    };
    let read_header_bytes = |r: &mut R, buf: &mut [u8]| -> Result<(), InputError> {
        r.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad("the file ends inside the header".into())
            } else {
                io_err(e)
            }
        })
    };

    let mut lead = [0u8; 8];
    read_header_bytes(r, &mut lead)?;
    if &lead[..6] != MAGIC {
        return Err(bad("no npy magic string (\\x93NUMPY) at the start; not an npy file".into()));
    }
    let (major, minor) = (lead[6], lead[7]);
    let header_len = match major {
        1 => {
            let mut b = [0u8; 2];
            read_header_bytes(r, &mut b)?;
            u64::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            read_header_bytes(r, &mut b)?;
            u64::from(u32::from_le_bytes(b))
        }
        _ => return Err(bad(format!("format version {major}.{minor} is not one of 1.0, 2.0, 3.0"))),
    };
    let prefix = if major == 1 { 10 } else { 12 };
    let (len, trusted) = match len {
        StreamLen::Known(n) => (n, true),
        StreamLen::Declared(n) => (n, false),
    };
    if header_len > MAX_HEADER_LEN {
        return Err(bad(format!("header length {header_len} is implausibly large")));
    }
    if prefix + header_len > len {
        return Err(bad(format!("header length {header_len} runs past the end of the {len}-byte file")));
    }
    let mut raw = vec![0u8; header_len as usize];
    read_header_bytes(r, &mut raw)?;
    // Versions 1 and 2 store the header in latin-1, version 3 in UTF-8.
    let text: String = if major == 3 {
        String::from_utf8(raw).map_err(|_| bad("version 3.0 header is not valid UTF-8".into()))?
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let header = parse_header(&text).map_err(bad)?;
    let element = element_of(&header.descr).map_err(|problem| InputError::UnsupportedDtype {
        file: file.clone(),
        descr: header.descr.clone(),
        problem,
    })?;

    Ok(ParsedHeader { header, element, prefix, header_len, len, trusted })
}

struct ParsedHeader {
    header: Header,
    element: Element,
    prefix: u64,
    header_len: u64,
    len: u64,
    trusted: bool,
}

/// The shape and element type an `.npy` file announces, from its header alone (the data is not read).
pub fn read_npy_header(path: &Path) -> Result<(Vec<usize>, DType), InputError> {
    check_readable(path)?;
    let io_err = |source| InputError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let source = NpySource { path: path.to_path_buf(), member: None };
    let parsed = read_header(&mut BufReader::new(file), StreamLen::Known(len), &source)?;
    let shape = parsed.header.shape.iter().map(|&d| d as usize).collect();
    Ok((shape, parsed.element.dtype()))
}

pub(crate) fn read_npy_stream<R: Read>(r: &mut R, len: StreamLen, file: &NpySource) -> Result<Tensor, InputError> {
    let bad = |problem: String| InputError::BadNpyHeader { file: file.clone(), problem };
    let io_err = |e: io::Error| match file.member.as_ref() {
        None => InputError::Io { path: file.path.clone(), source: e },
        Some(member) => InputError::NpzMember {
            path: file.path.clone(),
            member: member.clone(),
            problem: format!("cannot read: {e}"),
        },
    };
    let ParsedHeader { header, element, prefix, header_len, len, trusted } = read_header(r, len, file)?;

    let count = header
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| bad(format!("shape {:?} holds more elements than can be addressed", header.shape)))?;
    let expected =
        count.checked_mul(element.size()).ok_or_else(|| bad(format!("shape {:?} is too large", header.shape)))?;
    let found = len - prefix - header_len;
    if found < expected {
        return Err(InputError::Truncated { file: file.clone(), expected, found });
    }
    if found > expected {
        return Err(InputError::TrailingData { file: file.clone(), expected, extra: found - expected });
    }
    let shape: Vec<usize> = header.shape.iter().map(|&d| d as usize).collect();
    // An untrusted length may still be a lie: then the vector grows with the data that actually arrives.
    let capacity = if trusted { count as usize } else { (count as usize).min(CHUNK) };
    let truncated = |found: u64| InputError::Truncated { file: file.clone(), expected, found };
    let data = match element {
        Element::F4 => read_elems(r, count, capacity, f32::from_le_bytes).map_err(truncated)?.map(TensorData::F32),
        Element::F8 => {
            read_elems(r, count, capacity, |b| f64::from_le_bytes(b) as f32).map_err(truncated)?.map(TensorData::F32)
        }
        Element::F2 => read_elems(r, count, capacity, |b| half::f16::from_le_bytes(b).to_f32())
            .map_err(truncated)?
            .map(TensorData::F32),
        Element::I8 => read_elems(r, count, capacity, i64::from_le_bytes).map_err(truncated)?.map(TensorData::I64),
        Element::I4 => read_elems(r, count, capacity, i32::from_le_bytes).map_err(truncated)?.map(TensorData::I32),
        Element::U1 => read_elems(r, count, capacity, |b: [u8; 1]| b[0]).map_err(truncated)?.map(TensorData::U8),
    };
    let data = data.map_err(io_err)?;
    // Reaching the end of a zip member is what makes the zip crate verify its CRC; a longer stream than declared
    // is caught on the way.
    let mut probe = [0u8; 1];
    if r.read(&mut probe).map_err(io_err)? > 0 {
        return Err(InputError::TrailingData { file: file.clone(), expected, extra: 1 });
    }
    let data = if header.fortran_order { fortran_to_c(data, &shape) } else { data };
    Tensor::new(shape, data).map_err(|e| bad(e.to_string()))
}

/// `Ok(Err(io))` carries a read failure; `Err(found)` says the stream ended after `found` data bytes.
fn read_elems<R: Read, T, const N: usize>(
    r: &mut R,
    count: u64,
    capacity: usize,
    convert: impl Fn([u8; N]) -> T,
) -> Result<Result<Vec<T>, io::Error>, u64> {
    let mut out = Vec::with_capacity(capacity);
    let mut buf = vec![0u8; CHUNK];
    let mut remaining = count * N as u64;
    let mut done = 0u64;
    while remaining > 0 {
        let want = (remaining.min(CHUNK as u64)) as usize;
        let mut filled = 0;
        while filled < want {
            match r.read(&mut buf[filled..want]) {
                Ok(0) => return Err(done + filled as u64),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        // `want` is a multiple of N: CHUNK is, and so is every remaining byte count.
        for bytes in buf[..want].chunks_exact(N) {
            let mut a = [0u8; N];
            a.copy_from_slice(bytes);
            out.push(convert(a));
        }
        remaining -= want as u64;
        done += want as u64;
    }
    Ok(Ok(out))
}

fn fortran_to_c(data: TensorData, shape: &[usize]) -> TensorData {
    if shape.len() < 2 {
        return data;
    }
    match data {
        TensorData::F32(v) => TensorData::F32(transpose_f_to_c(&v, shape)),
        TensorData::I64(v) => TensorData::I64(transpose_f_to_c(&v, shape)),
        TensorData::I32(v) => TensorData::I32(transpose_f_to_c(&v, shape)),
        TensorData::U8(v) => TensorData::U8(transpose_f_to_c(&v, shape)),
    }
}

fn transpose_f_to_c<T: Copy>(src: &[T], shape: &[usize]) -> Vec<T> {
    let rank = shape.len();
    let mut f_strides = vec![1usize; rank];
    for k in 1..rank {
        f_strides[k] = f_strides[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(src.len());
    let mut index = vec![0usize; rank];
    let mut offset = 0usize;
    for _ in 0..src.len() {
        out.push(src[offset]);
        // Odometer over the C-order index, last axis fastest, keeping the Fortran offset in step.
        for k in (0..rank).rev() {
            index[k] += 1;
            offset += f_strides[k];
            if index[k] < shape[k] {
                break;
            }
            offset -= f_strides[k] * shape[k];
            index[k] = 0;
        }
    }
    out
}

#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// The header is a Python literal (`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`): parsed as one,
/// so that key order, quoting, spacing and trailing commas do not matter.
fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Literal { chars: text.chars().collect(), pos: 0, depth: 0 };
    let value = p.value()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(format!("unexpected text after the header dictionary at character {}", p.pos));
    }
    let Value::Dict(entries) = value else {
        return Err("the header is not a dictionary".into());
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (key, value) in entries {
        let Value::Str(key) = key else {
            return Err("a header key is not a string".into());
        };
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("descr", Value::List(fields)) => {
                return Err(format!("structured dtypes ({} fields listed in 'descr') are not supported", fields.len()));
            }
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(dims)) => {
                let dims = dims
                    .into_iter()
                    .map(|d| match d {
                        Value::Int(n) => u64::try_from(n).map_err(|_| format!("negative dimension {n} in 'shape'")),
                        _ => Err("'shape' holds something other than integers".to_string()),
                    })
                    .collect::<Result<Vec<u64>, String>>()?;
                shape = Some(dims);
            }
            ("descr" | "fortran_order" | "shape", _) => return Err(format!("'{key}' has the wrong type")),
            (other, _) => return Err(format!("unexpected key '{other}' (expected descr, fortran_order, shape)")),
        }
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header { descr, fortran_order, shape }),
        _ => Err("the header must have the keys 'descr', 'fortran_order' and 'shape'".into()),
    }
}

#[derive(Debug)]
enum Value {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

struct Literal {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Literal {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).copied()
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.peek() {
            Some(found) if found == c => {
                self.pos += 1;
                Ok(())
            }
            Some(found) => Err(format!("expected '{c}' at character {}, found '{found}'", self.pos)),
            None => Err(format!("expected '{c}', found the end of the header")),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.depth += 1;
        // Real headers nest two levels deep; a limit keeps a hostile one from exhausting the stack.
        if self.depth > 32 {
            return Err("the header nests too deeply".into());
        }
        let v = match self.peek() {
            None => Err("the header ends where a value was expected".to_string()),
            Some('{') => {
                self.pos += 1;
                self.sequence('}', |p| {
                    let key = p.value()?;
                    p.expect(':')?;
                    Ok((key, p.value()?))
                })
                .map(Value::Dict)
            }
            Some('(') => {
                self.pos += 1;
                self.sequence(')', Literal::value).map(Value::Tuple)
            }
            Some('[') => {
                self.pos += 1;
                self.sequence(']', Literal::value).map(Value::List)
            }
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                self.string(q).map(Value::Str)
            }
            Some(c) if c == '-' || c.is_ascii_digit() => self.int().map(Value::Int),
            Some(c) if c.is_alphabetic() => {
                let start = self.pos;
                while self.chars.get(self.pos).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::None),
                    _ => Err(format!("unexpected word '{word}' at character {start}")),
                }
            }
            Some(c) => Err(format!("unexpected '{c}' at character {}", self.pos)),
        };
        self.depth -= 1;
        v
    }

    /// Comma-separated items up to `close`; a trailing comma is allowed, as in Python.
    fn sequence<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(item(self)?);
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                Some(c) => return Err(format!("expected ',' or '{close}' at character {}, found '{c}'", self.pos)),
                None => return Err(format!("the header ends before the closing '{close}'")),
            }
        }
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.chars.get(self.pos).copied() {
                None => return Err("unterminated string in the header".into()),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('\\') => {
                    let escaped = self.chars.get(self.pos + 1).copied().ok_or("unterminated string in the header")?;
                    s.push(escaped);
                    self.pos += 2;
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<i128, String> {
        let start = self.pos;
        if self.chars.get(self.pos) == Some(&'-') {
            self.pos += 1;
        }
        while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        // Python 2 wrote long integers with an L suffix: `(3L, 4L)`.
        if self.chars.get(self.pos).is_some_and(|c| *c == 'L' || *c == 'l') {
            self.pos += 1;
        }
        digits.parse::<i128>().map_err(|_| format!("bad integer '{digits}' in the header"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::path::PathBuf;

    fn src() -> NpySource {
        NpySource { path: PathBuf::from("t.npy"), member: None }
    }

    /// An npy stream exactly as numpy lays it out, from a header dict text and raw data.
    fn npy_bytes(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let prefix = if version == 1 { 10 } else { 12 };
        let mut header = dict.to_string();
        while !(prefix + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    fn read(bytes: &[u8]) -> Result<Tensor, InputError> {
        read_npy_stream(&mut Cursor::new(bytes), StreamLen::Known(bytes.len() as u64), &src())
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn header_variants_parse() {
        let data = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let expect = Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        for dict in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            "{'shape': (2,3), 'fortran_order': False, 'descr': '<f4'}",
            "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2L, 3L)}",
            "{ 'descr' : '<f4' ,\n 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }",
        ] {
            for version in [1, 2, 3] {
                assert_eq!(read(&npy_bytes(version, dict, &data)).unwrap(), expect, "{dict} v{version}");
            }
        }
        let scalar = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}", &f32_bytes(&[7.5]));
        let t = read(&scalar).unwrap();
        assert_eq!((t.shape(), t.as_f32().unwrap()), (&[][..], &[7.5][..]));
        let empty = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5)}", &[]);
        assert_eq!(read(&empty).unwrap().shape(), &[0, 5]);
    }

    #[test]
    fn malformed_headers_are_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("{'descr': '<f4', 'fortran_order': False}", "must have the keys"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "'fortran_order' has the wrong type"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", "negative dimension -2"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "ends before the closing '}'"),
            ("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", "expected ',' or '}'"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", "structured dtypes"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", "unexpected text after"),
            ("['descr', '<f4']", "not a dictionary"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999)}", "elements"),
        ];
        for (dict, needle) in cases {
            let e = read(&npy_bytes(1, dict, &[0; 8])).unwrap_err();
            assert!(matches!(e, InputError::BadNpyHeader { .. }), "{dict}: {e}");
            assert!(e.to_string().contains(needle), "{dict}: {e}");
            assert!(e.to_string().starts_with("t.npy: bad npy header: "), "{e}");
        }
        let deep = format!("{{'descr': {}1{}}}", "(".repeat(100), ")".repeat(100));
        assert!(read(&npy_bytes(1, &deep, &[])).unwrap_err().to_string().contains("nests too deeply"));

        let e = read(b"PK\x03\x04 this is a zip").unwrap_err();
        assert!(e.to_string().contains("no npy magic string"), "{e}");
        let e = read(b"\x93NUM").unwrap_err();
        assert!(e.to_string().contains("ends inside the header"), "{e}");
        let mut v4 = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}", &[0; 4]);
        v4[6] = 4;
        assert!(read(&v4).unwrap_err().to_string().contains("format version 4.0"));
        let mut long = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}", &[0; 4]);
        long[8..10].copy_from_slice(&60000u16.to_le_bytes());
        assert!(read(&long).unwrap_err().to_string().contains("runs past the end"));
        let mut latin = npy_bytes(3, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}", &[0; 4]);
        latin[20] = 0xff;
        assert!(read(&latin).unwrap_err().to_string().contains("not valid UTF-8"));
    }

    #[test]
    fn dtypes_map_to_tensor_types() {
        let hdr = |d: &str, n: usize| format!("{{'descr': '{d}', 'fortran_order': False, 'shape': ({n},), }}");
        let f8: Vec<u8> = [1.5f64, -2.25, 1e-3].iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = read(&npy_bytes(1, &hdr("<f8", 3), &f8)).unwrap();
        assert_eq!(t.as_f32().unwrap(), &[1.5, -2.25, 1e-3f64 as f32]);
        let f2: Vec<u8> = [1.0f32, -0.5, 65504.0].iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
        assert_eq!(read(&npy_bytes(1, &hdr("<f2", 3), &f2)).unwrap().as_f32().unwrap(), &[1.0, -0.5, 65504.0]);
        let i8: Vec<u8> = [i64::MIN, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(read(&npy_bytes(1, &hdr("<i8", 2), &i8)).unwrap().data(), &TensorData::I64(vec![i64::MIN, 3]));
        let i4: Vec<u8> = [-7i32, 1 << 30].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(read(&npy_bytes(1, &hdr("<i4", 2), &i4)).unwrap().data(), &TensorData::I32(vec![-7, 1 << 30]));
        assert_eq!(
            read(&npy_bytes(1, &hdr("|u1", 3), &[0, 128, 255])).unwrap().data(),
            &TensorData::U8(vec![0, 128, 255])
        );
    }

    #[test]
    fn unsupported_dtypes_say_which_and_why() {
        let hdr = |d: &str| format!("{{'descr': '{d}', 'fortran_order': False, 'shape': (2,), }}");
        for (descr, needle) in [
            (">f4", "big-endian"),
            (">i8", "big-endian"),
            ("|b1", "boolean"),
            ("<i2", "supported: <f4"),
            ("<u4", "supported: <f4"),
            ("<c8", "supported: <f4"),
            ("|O", "supported: <f4"),
            ("=f4", "byte order is not stated"),
            ("f4", "byte order is not stated"),
            ("", "byte order is not stated"),
        ] {
            let e = read(&npy_bytes(1, &hdr(descr), &[0; 16])).unwrap_err();
            match &e {
                InputError::UnsupportedDtype { descr: d, .. } => assert_eq!(d, descr),
                other => panic!("{descr}: {other}"),
            }
            assert!(e.to_string().contains(needle), "{descr}: {e}");
            assert!(e.to_string().starts_with(&format!("t.npy: unsupported npy dtype \"{descr}\"")), "{e}");
        }
    }

    #[test]
    fn fortran_order_is_transposed_to_c_order() {
        // numpy: np.asfortranarray(np.arange(24).reshape(2, 3, 4)) stores the elements in this order.
        let c: Vec<i32> = (0..24).collect();
        let mut f = Vec::new();
        for k in 0..4 {
            for j in 0..3 {
                for i in 0..2 {
                    f.push(c[i * 12 + j * 4 + k]);
                }
            }
        }
        let data: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = read(&npy_bytes(1, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }", &data)).unwrap();
        assert_eq!(t.shape(), &[2, 3, 4]);
        assert_eq!(t.data(), &TensorData::I32(c));
        let vector = npy_bytes(1, "{'descr': '|u1', 'fortran_order': True, 'shape': (3,), }", &[1, 2, 3]);
        assert_eq!(read(&vector).unwrap().data(), &TensorData::U8(vec![1, 2, 3]));
    }

    #[test]
    fn truncated_and_padded_data_are_refused() {
        let full = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", &f32_bytes(&[1.0; 4]));
        let e = read(&full[..full.len() - 3]).unwrap_err();
        assert!(matches!(e, InputError::Truncated { expected: 16, found: 13, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "t.npy: truncated data: the header announces 16 bytes of array data, but only 13 follow"
        );
        let mut padded = full.clone();
        padded.extend([0, 0]);
        assert!(matches!(read(&padded).unwrap_err(), InputError::TrailingData { extra: 2, .. }));
        // A declared length (a zip member's) that lies is found out while reading, in both directions.
        let declared = |b: &[u8], len: usize| {
            read_npy_stream(&mut Cursor::new(b.to_vec()), StreamLen::Declared(len as u64), &src())
        };
        let short = &full[..full.len() - 3];
        assert!(matches!(declared(short, full.len()).unwrap_err(), InputError::Truncated { found: 13, .. }));
        assert!(matches!(declared(&padded, full.len()).unwrap_err(), InputError::TrailingData { extra: 1, .. }));
        assert_eq!(declared(&full, full.len()).unwrap().shape(), &[2, 2]);
        // A header and a declared size promising 8 TB over a short stream fail without reserving 8 TB.
        let huge = npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }", &[0; 64]);
        let lie = huge.len() - 64 + 8_000_000_000_000;
        assert!(matches!(declared(&huge, lie).unwrap_err(), InputError::Truncated { found: 64, .. }));
        assert!(matches!(read(&huge).unwrap_err(), InputError::Truncated { found: 64, .. }));
    }

    #[test]
    fn write_then_read_round_trips_every_dtype() {
        let tensors = [
            Tensor::from_f32(vec![2, 3], vec![0.0, -1.5, f32::MAX, f32::MIN_POSITIVE, 1e-30, 3.25]).unwrap(),
            Tensor::new(vec![3], TensorData::I64(vec![i64::MAX, i64::MIN, 0])).unwrap(),
            Tensor::new(vec![1, 2, 1], TensorData::I32(vec![5, -5])).unwrap(),
            Tensor::new(vec![], TensorData::U8(vec![42])).unwrap(),
            Tensor::from_f32(vec![0], vec![]).unwrap(),
            Tensor::from_f32(vec![40000], (0..40000).map(|i| i as f32).collect()).unwrap(),
        ];
        for t in &tensors {
            let mut bytes = Vec::new();
            write_npy(&mut bytes, t).unwrap();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0, "data is 64-byte aligned as numpy writes it");
            assert_eq!(bytes[10 + header_len - 1], b'\n');
            assert_eq!(&read(&bytes).unwrap(), t);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        write_npy_file(&path, &tensors[0]).unwrap();
        assert_eq!(read_npy(&path).unwrap(), tensors[0]);
        let e = write_npy_file(&dir.path().join("no/such/dir.npy"), &tensors[0]).unwrap_err();
        assert!(matches!(e, InputError::Write { .. }) && e.to_string().contains("cannot write"), "{e}");
    }

    #[test]
    fn header_of_a_high_rank_shape_moves_to_version_2() {
        let t = Tensor::from_f32(vec![1; 30000], vec![4.0]).unwrap();
        let mut bytes = Vec::new();
        write_npy(&mut bytes, &t).unwrap();
        assert_eq!(bytes[6], 2);
        let header_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert_eq!((12 + header_len) % 64, 0);
        assert_eq!(read(&bytes).unwrap(), t);
    }

    fn npz(dir: &Path, name: &str, method: zip::CompressionMethod, members: &[(&str, Vec<u8>)]) -> PathBuf {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (member, bytes) in members {
            zip.start_file(*member, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    fn npy_of(t: &Tensor) -> Vec<u8> {
        let mut b = Vec::new();
        write_npy(&mut b, t).unwrap();
        b
    }

    #[test]
    fn npz_stored_and_deflated() {
        let dir = tempfile::tempdir().unwrap();
        let x = Tensor::from_f32(vec![1, 3, 4, 4], (0..48).map(|i| i as f32 * 0.5).collect()).unwrap();
        let ids = Tensor::new(vec![1, 5], TensorData::I64(vec![101, 7, 0, 0, 102])).unwrap();
        for method in [zip::CompressionMethod::Stored, zip::CompressionMethod::Deflated] {
            let p = npz(dir.path(), "s.npz", method, &[("x.npy", npy_of(&x)), ("input_ids.npy", npy_of(&ids))]);
            let arrays = load_npz(&p).unwrap();
            assert_eq!(arrays, vec![("x".to_string(), x.clone()), ("input_ids".to_string(), ids.clone())]);
        }
        // numpy's savez writes a directory entry for nothing, but other zip tools might.
        let mut zip = zip::ZipWriter::new(File::create(dir.path().join("d.npz")).unwrap());
        zip.add_directory("sub/", zip::write::SimpleFileOptions::default()).unwrap();
        zip.start_file("sub/x.npy", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(&npy_of(&x)).unwrap();
        zip.finish().unwrap();
        assert_eq!(load_npz(&dir.path().join("d.npz")).unwrap(), vec![("sub/x".to_string(), x.clone())]);
    }

    #[test]
    fn npz_problems_name_the_archive_and_member() {
        let dir = tempfile::tempdir().unwrap();
        let stored = zip::CompressionMethod::Stored;
        let x = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();

        let p = npz(dir.path(), "a.npz", stored, &[("x.npy", npy_of(&x)), ("notes.txt", b"hi".to_vec())]);
        let e = load_npz(&p).unwrap_err();
        assert!(matches!(&e, InputError::NpzMember { member, .. } if member == "notes.txt"), "{e}");
        assert!(e.to_string().contains("a.npz: npz member \"notes.txt\": not an .npy member"), "{e}");

        let mut short = npy_of(&x);
        short.truncate(short.len() - 1);
        let p = npz(dir.path(), "b.npz", zip::CompressionMethod::Deflated, &[("x.npy", short)]);
        let e = load_npz(&p).unwrap_err();
        assert!(matches!(e, InputError::Truncated { expected: 8, found: 7, .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("{} (member x.npy): truncated data", p.display())), "{e}");

        let big = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
        let mut be = npy_of(&big);
        let at = be.windows(3).position(|w| w == b"<f4").unwrap();
        be[at] = b'>';
        let p = npz(dir.path(), "c.npz", stored, &[("x.npy", be)]);
        let e = load_npz(&p).unwrap_err();
        assert!(matches!(e, InputError::UnsupportedDtype { .. }), "{e}");
        assert!(e.to_string().contains("(member x.npy): unsupported npy dtype \">f4\": big-endian"), "{e}");

        let p = npz(dir.path(), "e.npz", stored, &[]);
        assert!(matches!(load_npz(&p).unwrap_err(), InputError::NpzEmpty { .. }));

        let p = dir.path().join("f.npz");
        std::fs::write(&p, b"definitely not a zip archive").unwrap();
        let e = load_npz(&p).unwrap_err();
        assert!(matches!(e, InputError::NpzArchive { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("{}: not a readable npz (zip) archive", p.display())), "{e}");

        // A flipped byte inside a stored member is caught by the zip CRC check.
        let p = npz(dir.path(), "g.npz", stored, &[("x.npy", npy_of(&x))]);
        let mut bytes = std::fs::read(&p).unwrap();
        let data_at = bytes.windows(4).position(|w| w == 2.0f32.to_le_bytes()).unwrap();
        bytes[data_at] ^= 0x01;
        std::fs::write(&p, bytes).unwrap();
        let e = load_npz(&p).unwrap_err();
        assert!(e.to_string().contains("(member x.npy)") || e.to_string().contains("\"x.npy\""), "{e}");

        assert!(matches!(load_npz(&dir.path().join("none.npz")).unwrap_err(), InputError::NotFound { .. }));
    }
}
