//! Handing back the binary's start-up code once a component has started.
//!
//! Most of what an idle component holds in memory is its own binary's code
//! and read-only data, not its heap: starting maps the flag parser, the
//! OpenAPI and protobuf tables, the first list and watch decoders. Those
//! pages are clean and the kernel would reclaim them under memory pressure,
//! but only late: pages of executable mappings get an extra trip around the
//! active list, so on a small node they stay ahead of the page cache a
//! workload needs.
//!
//! [`page_out_start_up_code`] asks the kernel once, a little after start, to
//! reclaim the binary's read-only mappings (`madvise(MADV_PAGEOUT)`, Linux
//! 5.4). Pages shared with another process (a second copy of the same
//! binary, libc) are left alone by the kernel.
//!
//! Reclaiming is not enough by itself: what idle work runs faults back in,
//! and a fault maps far more than the page touched. The kernel reads ahead
//! around a faulting address (`read_ahead_kb`, 8 MiB on these machines),
//! and then maps every page of the 64 KiB around it that is in the page
//! cache (fault-around). So the hand-back also turns read-ahead off for
//! these mappings (`MADV_RANDOM`) and drops the binary's pages that nobody
//! maps from the page cache (`POSIX_FADV_DONTNEED`). On recent kernels
//! (6.18 here) `MADV_RANDOM` no longer stops the read-ahead of executable
//! mappings, so this keeps only the read-only data from coming back whole
//! (0.4-1 MiB per component); for the code, what helps is the code that
//! runs at idle linked together (`hack/code-layout/`), so that the windows
//! it faults in are its own.
//!
//! The price is paid once, by the first burst of work after an idle start:
//! pages come back by reads of their own, not by one read-ahead of many.

use std::io;
use std::ops::Range;
use std::time::Duration;

/// How long after start the start-up code is handed back: long enough for
/// a component to have connected, listed and started its loops, so that
/// what it runs from then on is its steady-state code.
const START_UP_GRACE: Duration = Duration::from_secs(10);

/// One mapping of a file into a process, from a line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMapping {
    /// Its addresses.
    pub range: Range<usize>,
    /// The file offset its first page maps.
    pub offset: u64,
    /// Whether it may be written (data).
    pub writable: bool,
    /// Whether it may be run (code).
    pub executable: bool,
}

/// The mappings of the file `path` in the text of a `/proc/PID/maps`.
pub fn mappings_of<'a>(maps: &'a str, path: &'a str) -> impl Iterator<Item = FileMapping> + 'a {
    maps.lines().filter_map(move |line| {
        // address perms offset dev inode pathname; the pathname is the
        // rest of the line and may hold spaces (" (deleted)" after a
        // rebuild, as /proc/self/exe then reads too).
        let mut fields = line.splitn(6, ' ');
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?.as_bytes();
        let offset = fields.next()?;
        if fields.nth(2)?.trim_start() != path || perms.len() < 3 {
            return None;
        }
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start < end).then_some(FileMapping {
            range: start..end,
            offset: u64::from_str_radix(offset, 16).ok()?,
            writable: perms[1] == b'w',
            executable: perms[2] == b'x',
        })
    })
}

/// The address ranges of `exe`'s mappings that are not writable (its code
/// and read-only data), read from the text of `/proc/self/maps`.
pub fn read_only_mappings_of(maps: &str, exe: &str) -> Vec<Range<usize>> {
    mappings_of(maps, exe)
        .filter(|m| !m.writable)
        .map(|m| m.range)
        .collect()
}

/// Asks the kernel to reclaim the pages of `ranges` now
/// (`MADV_PAGEOUT`). Returns the bytes advised.
pub fn page_out(ranges: impl IntoIterator<Item = Range<usize>>) -> io::Result<usize> {
    let mut advised = 0;
    for range in ranges {
        let len = range.end - range.start;
        // SAFETY: MADV_PAGEOUT only reclaims: a clean file-backed page is
        // read back from its file at the next touch, a private page that
        // was written (relocated read-only data) goes to swap or stays.
        // No mapping's contents, protection or extent change, so no Rust
        // reference into these ranges is invalidated.
        #[allow(unsafe_code)]
        unsafe {
            rustix::mm::madvise(
                range.start as *mut std::ffi::c_void,
                len,
                rustix::mm::Advice::LinuxPageOut,
            )?;
        }
        advised += len;
    }
    Ok(advised)
}

/// Hands `ranges`, mappings of `file`, back to the kernel so that only
/// what is touched from now on comes back: read-ahead off for them
/// (`MADV_RANDOM`), their pages reclaimed ([`page_out`]), and `file`'s
/// pages that nobody maps dropped from the page cache, so that a later
/// fault finds no neighbours to map with it. Returns the bytes advised.
pub fn hand_back(ranges: &[Range<usize>], file: &std::fs::File) -> io::Result<usize> {
    for range in ranges {
        // SAFETY: MADV_RANDOM is a hint about access order: it changes no
        // mapping's contents, protection or extent.
        #[allow(unsafe_code)]
        unsafe {
            rustix::mm::madvise(
                range.start as *mut std::ffi::c_void,
                range.end - range.start,
                rustix::mm::Advice::Random,
            )?;
        }
    }
    let advised = page_out(ranges.iter().cloned())?;
    // Only clean pages no process maps are dropped: another process
    // running the same binary keeps what it uses.
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(advised)
}

/// [`hand_back`] of this process's own binary's read-only mappings.
pub fn hand_back_own_code() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    // /proc/self/exe opens the running binary even once it was replaced or
    // deleted (a rebuild under a running cluster).
    let file = std::fs::File::open("/proc/self/exe")?;
    hand_back(&read_only_mappings_of(&maps, &exe.to_string_lossy()), &file)
}

/// Spawns a task that, ten seconds after start, hands the binary's
/// start-up code back ([`hand_back_own_code`]) once. A kernel without
/// `MADV_PAGEOUT` (before 5.4) or a sandbox that forbids it only costs a
/// debug line.
pub fn page_out_start_up_code() {
    tokio::spawn(async move {
        tokio::time::sleep(START_UP_GRACE).await;
        let before = file_rss_kib();
        match tokio::task::spawn_blocking(hand_back_own_code).await {
            Ok(Ok(advised)) => tracing::debug!(
                advised_bytes = advised,
                file_rss_kib_before = before,
                file_rss_kib_after = file_rss_kib(),
                "handed start-up code pages back to the kernel"
            ),
            Ok(Err(error)) => {
                tracing::debug!(%error, "could not hand start-up code pages back")
            }
            Err(error) => tracing::debug!(%error, "handing start-up code back panicked"),
        }
    });
}

/// `RssFile` of `/proc/self/status`, KiB (0 when unreadable): for the log.
fn file_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("RssFile:"))
                .and_then(kib)
        })
        .unwrap_or(0)
}

/// The number of a `/proc` field's value such as `  1024 kB`.
fn kib(value: &str) -> Option<u64> {
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const MAPS: &str = "\
55d0c0000000-55d0c0770000 r--p 00000000 fe:00 5311440                    /usr/bin/apiserver
55d0c0770000-55d0c1d45000 r-xp 00770000 fe:00 5311440                    /usr/bin/apiserver
55d0c1d45000-55d0c1e00000 r--p 01d45000 fe:00 5311440                    /usr/bin/apiserver
55d0c1e00000-55d0c1e10000 rw-p 01e00000 fe:00 5311440                    /usr/bin/apiserver
55d0c1e10000-55d0c1e20000 rw-p 00000000 00:00 0 
55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000028000 r--p 00000000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000028000-7f00001bd000 r-xp 00028000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1000000000-7f1000001000 r-xp 00000000 fe:00 99                         /opt/my dir/apiserver (deleted)
";

    #[test]
    fn only_the_binarys_read_only_mappings_are_chosen() {
        assert_eq!(
            read_only_mappings_of(MAPS, "/usr/bin/apiserver"),
            vec![
                0x55d0c0000000..0x55d0c0770000,
                0x55d0c0770000..0x55d0c1d45000,
                0x55d0c1d45000..0x55d0c1e00000,
            ]
        );
        assert_eq!(
            read_only_mappings_of(MAPS, "/opt/my dir/apiserver (deleted)"),
            vec![0x7f1000000000..0x7f1000001000]
        );
        assert!(read_only_mappings_of(MAPS, "/usr/bin/scheduler").is_empty());
        assert!(read_only_mappings_of("garbage\n\n1-2 r-xp", "/usr/bin/apiserver").is_empty());
    }

    #[test]
    fn a_mapping_gives_its_file_offset_and_permissions() {
        let code: Vec<FileMapping> = mappings_of(MAPS, "/usr/bin/apiserver")
            .filter(|m| m.executable)
            .collect();
        assert_eq!(
            code,
            [FileMapping {
                range: 0x55d0c0770000..0x55d0c1d45000,
                offset: 0x770000,
                writable: false,
                executable: true,
            }]
        );
        let data: Vec<u64> = mappings_of(MAPS, "/usr/bin/apiserver")
            .filter(|m| m.writable)
            .map(|m| m.offset)
            .collect();
        assert_eq!(data, [0x1e00000]);
    }

    /// Resident KiB of the mapping that starts at `start`, from
    /// `/proc/self/smaps`.
    fn resident_kib(start: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let head = format!("{start:x}-");
        let mut lines = smaps.lines().skip_while(|line| !line.starts_with(&head));
        lines.next();
        lines
            .find_map(|line| line.strip_prefix("Rss:"))
            .and_then(kib)
            .unwrap_or(u64::MAX)
    }

    /// A file of `len` patterned bytes written (and so in the page cache)
    /// in a directory of its own next to the test binary: on the disk the
    /// build is on, not on a tmpfs, whose pages cannot be dropped.
    struct MappedFile {
        dir: std::path::PathBuf,
        file: std::fs::File,
        pattern: Vec<u8>,
        start: usize,
    }

    impl MappedFile {
        fn new(name: &str, len: usize) -> io::Result<Self> {
            let exe = std::env::current_exe()?;
            let parent = exe.parent().unwrap_or(std::path::Path::new("."));
            let dir = parent.join(format!("code-pages-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("mapped");
            let pattern: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut written = std::fs::File::create(&path)?;
            written.write_all(&pattern)?;
            written.sync_all()?;
            let file = std::fs::File::open(&path)?;
            // SAFETY (test): a fresh private read-only mapping of a file
            // only this test writes, unmapped on drop; read as bytes.
            #[allow(unsafe_code)]
            let mapped = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    len,
                    rustix::mm::ProtFlags::READ,
                    rustix::mm::MapFlags::PRIVATE,
                    &file,
                    0,
                )?
            };
            Ok(Self {
                dir,
                file,
                pattern,
                start: mapped as usize,
            })
        }

        fn bytes(&self) -> &[u8] {
            // SAFETY (test): the mapping lives as long as self.
            #[allow(unsafe_code)]
            unsafe {
                std::slice::from_raw_parts(self.start as *const u8, self.pattern.len())
            }
        }

        fn range(&self) -> Range<usize> {
            self.start..self.start + self.pattern.len()
        }
    }

    impl Drop for MappedFile {
        fn drop(&mut self) {
            // SAFETY (test): the mapping made in new, no longer borrowed.
            #[allow(unsafe_code)]
            let _ = unsafe {
                rustix::mm::munmap(self.start as *mut std::ffi::c_void, self.pattern.len())
            };
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A private read-only file mapping, read through, is resident; after
    /// `page_out` it is not, and its contents read back unchanged.
    #[test]
    fn paged_out_file_pages_leave_the_process_and_read_back_the_same() -> io::Result<()> {
        let mapped = MappedFile::new("page-out", 1024 * 1024)?;
        assert_eq!(mapped.bytes(), &mapped.pattern[..]);
        let before = resident_kib(mapped.start);
        let advised = page_out(std::iter::once(mapped.range()))?;
        let after = resident_kib(mapped.start);
        assert_eq!(advised, mapped.pattern.len());
        assert_eq!(before, 1024, "the whole mapping was read, so resident");
        assert_eq!(after, 0, "MADV_PAGEOUT left {after} KiB resident");
        assert!(
            mapped.bytes() == &mapped.pattern[..],
            "contents changed after page-out"
        );
        Ok(())
    }

    /// After `hand_back`, a byte read maps its own page only: neither a
    /// page that was mapped before (read-ahead would bring its
    /// neighbours) nor one that never was (the file's pages still in the
    /// page cache would come with it, fault-around).
    #[test]
    fn handed_back_pages_come_back_one_at_a_time() -> io::Result<()> {
        const PAGE: usize = 4096;
        let mapped = MappedFile::new("hand-back", 1024 * 1024)?;
        let half = mapped.pattern.len() / 2;
        // The first half was run; the second only written (in the cache).
        assert_eq!(mapped.bytes()[..half], mapped.pattern[..half]);
        hand_back(&[mapped.range()], &mapped.file)?;
        assert_eq!(resident_kib(mapped.start), 0);

        let read = |offset: usize| {
            // Volatile: the read must happen, and where the test says.
            // SAFETY (test): inside the mapping, which lives as long as it.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::read_volatile((mapped.start + offset) as *const u8)
            }
        };
        let once_mapped = 40 * PAGE + 123;
        assert_eq!(read(once_mapped), mapped.pattern[once_mapped]);
        let after_one = resident_kib(mapped.start);
        let never_mapped = half + 40 * PAGE + 5;
        assert_eq!(read(never_mapped), mapped.pattern[never_mapped]);
        let after_two = resident_kib(mapped.start);
        assert_eq!(
            after_one, 4,
            "a page that was mapped came back with neighbours"
        );
        assert_eq!(
            after_two, 8,
            "a page never mapped came back with neighbours"
        );
        Ok(())
    }
}
