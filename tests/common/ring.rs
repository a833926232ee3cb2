//! The `net_ring` pipeline tests' shared pieces: a host at the far end of a ring port (send a
//! frame, receive what the appliance sends), frame builders both directions need, and checks.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use midogw::flowtable::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Headers,
};
use midogw::{Burst, Mempool, PortConfig, RxQueue, TxQueue};

pub fn eth(f: &mut [u8], src: EthernetAddress, dst: EthernetAddress, ty: EtherType) {
    EthernetRepr { src_addr: src, dst_addr: dst, vlan: None, ethertype: ty }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
}

pub fn arp(op: ArpOperation, src_mac: EthernetAddress, dst_mac: EthernetAddress, spa: &str, tpa: &str) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28];
    eth(&mut f, src_mac, dst_mac, EtherType::Arp);
    let tha = if op == ArpOperation::Request { EthernetAddress([0; 6]) } else { dst_mac };
    ArpRepr {
        operation: op,
        source_hardware_addr: src_mac,
        source_protocol_addr: ip(spa),
        target_hardware_addr: tha,
        target_protocol_addr: ip(tpa),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// Parses `frame` and checks every checksum in it.
pub fn valid(frame: &[u8]) -> Headers {
    let h = Headers::parse(frame).expect("parses");
    h.verify_checksums(frame).expect("checksums");
    h
}

pub struct Host<'p> {
    pub pool: &'p Mempool<'p>,
    pub tx: TxQueue<'p>,
    pub rx: RxQueue<'p>,
}

impl Host<'_> {
    pub fn send(&mut self, frame: &[u8]) {
        let mut b = Burst::new();
        let mut m = self.pool.alloc().expect("mbuf");
        m.append(frame.len() as u16).expect("room").copy_from_slice(frame);
        b.push(m).expect("room");
        assert_eq!(self.tx.tx(&mut b), 1);
    }

    /// Waits up to two seconds for `n` frames; returns what arrived (more than `n` only if they came together).
    pub fn recv(&mut self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            let mut b = Burst::new();
            self.rx.rx(&mut b);
            got.extend((0..b.len()).map(|i| b.data(i).to_vec()));
        }
        got
    }

    /// Nothing arrives within 200 ms.
    pub fn silent(&mut self) {
        let got = self.recv_for(Duration::from_millis(200));
        assert!(got.is_empty(), "unexpected frames: {got:02x?}");
    }

    pub fn recv_for(&mut self, d: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let mut b = Burst::new();
            self.rx.rx(&mut b);
            got.extend((0..b.len()).map(|i| b.data(i).to_vec()));
        }
        got
    }
}

pub fn config(name: &str) -> PortConfig {
    PortConfig { name: name.into(), mtu: 1500, rx_queues: 1, tx_queues: 1 }
}

pub fn counter(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
