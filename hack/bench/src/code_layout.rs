//! `code-layout`: which functions each component runs while idle, written
//! as the linker's symbol ordering files (`hack/code-layout/`), so that a
//! release build puts them together at the front of the code.
//!
//! Why: an idle component's memory is mostly its own code, and the kernel
//! maps code 64 KiB around every page touched (fault-around) after reading
//! far around it (read-ahead). Idle work touches a few hundred functions
//! spread over the whole binary: an idle apiserver mapped 12 MiB of code
//! windows to run 3.7 MiB of pages. Laid out together, those functions
//! fill few windows.
//!
//! How: the idle set of `idle-rss` runs with the binaries' block device's
//! read-ahead off (`read_ahead_kb` 0, restored after), so a fault reads
//! only its page, and after the start-up code is handed back (10 s after
//! start, `client_util::code_pages`) the pages present in each process are
//! exactly those its idle work touched (`/proc/PID/pagemap`). Every
//! function of the binary's symbol table on such a page is listed, in
//! address order. Run from a layout already made, the list only shrinks
//! toward what runs. Needs root (sysfs and pagemap) and a release build.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use mini_k8s_tests::etcd::Etcd;
use mini_k8s_tests::interrupts::Interrupts;
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _, SymbolKind};

use client_util::code_pages::{mappings_of, FileMapping};

use crate::cluster::{bin_dir, stop_all, work_dir};
use crate::idle::{measure_one, Settle, Variant, COMPONENTS};

const PAGE: u64 = 4096;

/// The flags of `code-layout`.
#[derive(clap::Args, Debug)]
pub struct CodeLayoutArgs {
    /// Seconds the components are left idle before their pages are read:
    /// past the hand-back at 10 s and past kube-proxy's periodic sync.
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u64).range(15..=600))]
    settle: u64,
    /// Where the component binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where `<component>.order` files are written.
    #[arg(long, default_value = "hack/code-layout")]
    out_dir: PathBuf,
}

/// Starts etcd and the idle set with read-ahead off, lists each
/// component's idle functions and writes them to `--out-dir`.
pub async fn code_layout(args: &CodeLayoutArgs) -> Result<()> {
    let mut interrupts = Interrupts::catch()?;
    let bin_dir = bin_dir(args.bin_dir.as_ref())?;
    ensure!(
        args.out_dir.is_dir(),
        "--out-dir {} is not a directory",
        args.out_dir.display()
    );
    let read_ahead = ReadAheadOff::for_file(&bin_dir.join(COMPONENTS[0].0))?;
    let work = work_dir("code-layout")?;
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .context("etcd start panicked")??;
    let settle = Settle {
        seconds: args.settle,
        readings: 1,
    };
    let mut pages: Vec<(String, Vec<u64>)> = Vec::new();
    let mut components = Vec::new();
    let variant = Variant::default_set();
    let mut read_pages = |settled: &[(&str, u32)]| {
        for (name, pid) in settled {
            pages.push(((*name).to_string(), resident_code_pages(*pid)?));
        }
        Ok(())
    };
    let run = measure_one(
        &settle,
        &variant,
        &bin_dir,
        &etcd,
        &work,
        &mut components,
        &mut read_pages,
    );
    let outcome = tokio::select! {
        outcome = run => outcome.map(|_| ()),
        signal = interrupts.next() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    let stopped = stop_all(&mut components).await;
    drop(etcd);
    drop(read_ahead);
    outcome?;
    stopped?;
    fs::remove_dir_all(&work).ok();
    for (name, offsets) in &pages {
        let binary = bin_dir.join(name);
        let data = fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
        let functions = functions_on_pages(&data, offsets)
            .with_context(|| format!("reading the symbols of {}", binary.display()))?;
        let out = args.out_dir.join(format!("{name}.order"));
        let mut text = format!(
            "# The functions {name} runs while idle, first in its code (hack/code-layout/README.md).\n\
             # Written by `mini-k8s-bench code-layout`: {} pages touched, {} functions.\n",
            offsets.len(),
            functions.len()
        );
        for function in &functions {
            text.push_str(function);
            text.push('\n');
        }
        fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "{name}: {} code pages touched while idle ({} KiB), {} functions -> {}",
            offsets.len(),
            offsets.len() as u64 * PAGE / 1024,
            functions.len(),
            out.display()
        );
    }
    Ok(())
}

/// The executable mappings of `exe` in the text of a `/proc/PID/maps`.
fn code_mappings(maps: &str, exe: &Path) -> Vec<FileMapping> {
    mappings_of(maps, &exe.to_string_lossy())
        .filter(|m| m.executable)
        .collect()
}

/// The file offsets of the pages of `pid`'s own executable mappings that
/// are present in its memory.
fn resident_code_pages(pid: u32) -> Result<Vec<u64>> {
    let exe = fs::read_link(format!("/proc/{pid}/exe"))?;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut pagemap =
        fs::File::open(format!("/proc/{pid}/pagemap")).context("opening pagemap (needs root)")?;
    let mut offsets = Vec::new();
    for mapping in code_mappings(&maps, &exe) {
        let (start, end) = (mapping.range.start as u64, mapping.range.end as u64);
        let count = ((end - start) / PAGE) as usize;
        let mut entries = vec![0u8; count * 8];
        pagemap.seek(SeekFrom::Start(start / PAGE * 8))?;
        pagemap.read_exact(&mut entries)?;
        for (i, entry) in entries.chunks_exact(8).enumerate() {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(entry);
            // Bit 63: present in memory.
            if u64::from_le_bytes(bytes) >> 63 == 1 {
                offsets.push(mapping.offset + i as u64 * PAGE);
            }
        }
    }
    ensure!(
        !offsets.is_empty(),
        "no code page of {} is present in process {pid}",
        exe.display()
    );
    Ok(offsets)
}

/// The names (as linked) of the functions of the ELF file `data` that lie
/// at least partly on the pages at the file `offsets`, in address order.
fn functions_on_pages(data: &[u8], offsets: &[u64]) -> Result<Vec<String>> {
    let file = object::File::parse(data)?;
    // File offset -> address, through the loadable segments.
    let mut pages = std::collections::BTreeSet::new();
    for &offset in offsets {
        let address = file.segments().find_map(|segment| {
            let (start, size) = segment.file_range();
            (start <= offset && offset < start + size).then(|| segment.address() + (offset - start))
        });
        if let Some(address) = address {
            pages.insert(address / PAGE);
        }
    }
    let mut functions: Vec<(u64, String)> = file
        .symbols()
        .filter(|symbol| symbol.kind() == SymbolKind::Text && symbol.size() > 0)
        .filter(|symbol| {
            let first = symbol.address() / PAGE;
            let last = (symbol.address() + symbol.size() - 1) / PAGE;
            pages.range(first..=last).next().is_some()
        })
        .filter_map(|symbol| Some((symbol.address(), symbol.name().ok()?.to_string())))
        .collect();
    if functions.is_empty() {
        bail!("no function symbol on the touched pages (a stripped binary?)");
    }
    functions.sort();
    functions.dedup_by(|a, b| a.1 == b.1);
    Ok(functions.into_iter().map(|(_, name)| name).collect())
}

/// The read-ahead of the block device holding a file, set to 0 while this
/// lives and put back on drop.
struct ReadAheadOff {
    knob: PathBuf,
    before: String,
}

impl ReadAheadOff {
    fn for_file(file: &Path) -> Result<Self> {
        let dev = fs::metadata(file)
            .with_context(|| format!("{}", file.display()))?
            .dev();
        let (major, minor) = (dev_major(dev), dev_minor(dev));
        ensure!(
            major != 0,
            "{} is not on a block device (device {major}:{minor}); build where the binaries are on a disk",
            file.display()
        );
        let device = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
        // A partition's queue settings are its disk's.
        let knob = [device.join("queue"), device.join("../queue")]
            .into_iter()
            .map(|queue| queue.join("read_ahead_kb"))
            .find(|knob| knob.exists())
            .with_context(|| format!("no read_ahead_kb for device {major}:{minor}"))?;
        let before = fs::read_to_string(&knob)?.trim().to_string();
        fs::write(&knob, "0")
            .with_context(|| format!("writing {} (needs root)", knob.display()))?;
        eprintln!("read-ahead off ({} was {before})", knob.display());
        Ok(Self { knob, before })
    }
}

impl Drop for ReadAheadOff {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.knob, &self.before) {
            eprintln!(
                "could not put {} back to {}: {e}; do it by hand",
                self.knob.display(),
                self.before
            );
        }
    }
}

/// The major number of a `st_dev` (glibc's `gnu_dev_major`).
fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// The minor number of a `st_dev` (glibc's `gnu_dev_minor`).
fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_as_glibc_does() {
        // makedev(254, 0) and makedev(259, 70000)
        assert_eq!((dev_major(0xfe00), dev_minor(0xfe00)), (254, 0));
        let big = (259u64 << 8) | (70000 & 0xff) | ((70000u64 & !0xff) << 12);
        assert_eq!((dev_major(big), dev_minor(big)), (259, 70000));
    }

    /// The page this very function's code is on, found through this
    /// process's maps, names this function among those on it.
    #[test]
    fn a_touched_page_lists_the_functions_on_it() -> Result<()> {
        let function: fn(&[u8], &[u64]) -> Result<Vec<String>> = functions_on_pages;
        let address = function as usize as u64;
        let exe = fs::read_link("/proc/self/exe")?;
        let maps = fs::read_to_string("/proc/self/maps")?;
        let offset = code_mappings(&maps, &exe)
            .into_iter()
            .find(|m| m.range.contains(&(address as usize)))
            .map(|m| (address - m.range.start as u64 + m.offset) / PAGE * PAGE)
            .context("this function is in no mapping of the test binary")?;
        let functions = functions_on_pages(&fs::read(&exe)?, &[offset])?;
        assert!(
            functions.iter().any(|f| f.contains("functions_on_pages")),
            "{} functions on the page, none of them this one",
            functions.len()
        );
        // An offset on no page of code names nothing.
        assert!(functions_on_pages(&fs::read(&exe)?, &[u64::MAX / 2]).is_err());
        Ok(())
    }
}
