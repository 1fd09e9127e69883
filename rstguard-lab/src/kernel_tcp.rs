//! What the kernel holds for a TCP socket of this process, read the way
//! CRIU reads it (TCP_REPAIR), and the network namespace a test thread
//! runs in. For socket mode's tests: they aim RSTs at numbers the socket
//! really holds, and then compare rstguard's verdict with the kernel's.

use std::{io, os::fd::AsRawFd};

/// include/uapi/linux/tcp.h (the libc crate does not have them for Linux).
const TCP_REPAIR: libc::c_int = 19;
const TCP_REPAIR_QUEUE: libc::c_int = 20;
const TCP_QUEUE_SEQ: libc::c_int = 21;
const TCP_RECV_QUEUE: libc::c_int = 1;
const TCP_SEND_QUEUE: libc::c_int = 2;
/// Leave repair mode without sending a window probe.
const TCP_REPAIR_OFF_NO_WP: libc::c_int = -1;

fn setopt(fd: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid fd and an int option.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getopt_u32(fd: libc::c_int, opt: libc::c_int) -> io::Result<u32> {
    let mut v: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: a valid fd, a u32 and its length.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_TCP,
            opt,
            (&mut v as *mut u32).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A socket's sequence numbers: `rcv_nxt` (RCV.NXT) and `write_seq` (the
/// end of everything the application wrote: SND.NXT once it is all sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seqs {
    pub rcv_nxt: u32,
    pub write_seq: u32,
}

/// Reads `sock`'s sequence numbers through TCP_REPAIR (needs
/// CAP_NET_ADMIN; any state but LISTEN). The socket leaves repair mode at
/// once, sending nothing.
pub fn seqs(sock: &impl AsRawFd) -> io::Result<Seqs> {
    let fd = sock.as_raw_fd();
    setopt(fd, TCP_REPAIR, 1)?;
    let read = (|| {
        setopt(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)?;
        let rcv_nxt = getopt_u32(fd, TCP_QUEUE_SEQ)?;
        setopt(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)?;
        let write_seq = getopt_u32(fd, TCP_QUEUE_SEQ)?;
        Ok(Seqs { rcv_nxt, write_seq })
    })();
    setopt(fd, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP)?;
    read
}

/// `tcp_info.tcpi_state` of `sock` (include/net/tcp_states.h).
pub fn state(sock: &impl AsRawFd) -> io::Result<u8> {
    // SAFETY: tcp_info is plain old data.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd and a buffer of the length given.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(info.tcpi_state)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves the calling thread into a new network namespace with `lo` up: a
/// test's own, gone when the thread ends (nothing else holds it).
pub fn private_netns() {
    // SAFETY: unshare affects only this thread's namespaces.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET): {}",
        io::Error::last_os_error()
    );
    crate::sh(&["ip", "link", "set", "lo", "up"]);
}
