//! What an application sees of a reset: sockets opened from a known port,
//! read to their end, their kernel state, a reset awaited; and a socket
//! that vanishes without a word (the far side of a half-open connection).

use std::{
    io::{ErrorKind, Read},
    net::{IpAddr, SocketAddr, TcpStream},
    os::fd::AsRawFd,
    time::Duration,
};

use socket2::{Domain, Socket, Type};

/// `tcpi_state` values (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_CLOSE_WAIT: u8 = 8;

/// A TCP socket bound to `local` on a port the kernel picks: its address
/// is known before it connects (create it on a thread in the namespace it
/// belongs to).
pub fn bound(local: IpAddr) -> (Socket, SocketAddr) {
    let s = Socket::new(
        Domain::for_address(SocketAddr::new(local, 0)),
        Type::STREAM,
        None,
    )
    .expect("a TCP socket");
    s.bind(&SocketAddr::new(local, 0).into()).expect("binding");
    let addr = s.local_addr().unwrap().as_socket().expect("an IP address");
    (s, addr)
}

/// Connects `s` to `to` within `timeout`; the stream's reads time out
/// after `timeout` too.
pub fn connect(s: Socket, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    s.connect_timeout(&to.into(), timeout)?;
    let c: TcpStream = s.into();
    c.set_read_timeout(Some(timeout))?;
    Ok(c)
}

/// Reads until an error, returned, or EOF (`UnexpectedEof`); also how many
/// bytes came before.
pub fn read_until_error(mut c: &TcpStream) -> (u64, ErrorKind) {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (total, ErrorKind::UnexpectedEof),
            Ok(k) => total += k as u64,
            Err(e) => return (total, e.kind()),
        }
    }
}

/// The kernel's TCP state of a socket (`TCP_*` above).
pub fn tcp_state(s: &TcpStream) -> u8 {
    // SAFETY: tcp_info is plain old data; the kernel fills at most len bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd and a buffer of len bytes.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_state
}

/// Waits at most `timeout` for the socket to be reset; whether it was.
/// poll(2) reports an error (and a hang-up) whatever events are asked for,
/// and a socket that only received a FIN has neither.
pub fn wait_reset(s: &TcpStream, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    r == 1 && p.revents & libc::POLLERR != 0
}

/// Closes a socket without a word: in repair mode, closing sends nothing
/// (no FIN, no RST). Its peer is left half-open.
pub fn vanish(s: TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "TCP_REPAIR: {}", std::io::Error::last_os_error());
    drop(s);
}
