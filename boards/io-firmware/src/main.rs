//! Convoy's I/O companion firmware for an STM32F429ZI (the NUCLEO-F429ZI board, whose LAN8742A
//! PHY is wired over RMII): it reads the vehicle's digital inputs and supply voltage, drives the
//! relays and talks to the edge unit over UDP (`protocol::io` messages, postcard-encoded). All
//! decisions (debounce, heartbeat, power warning, the unit-link watchdog) are `io-logic`'s; this
//! file only moves pins and datagrams, once a millisecond.
//!
//! Wiring (see boards/README.md):
//!
//! | what | pin | electrical |
//! |---|---|---|
//! | ignition, door 0–3 | PE2, PE3, PE4, PE5, PE6 | opto-coupler pulls low when active; internal pull-up |
//! | panic button | PC13 | the board's USER button for bench tests: high when pressed |
//! | relays 0–3 | PD12, PD13, PD14, PD15 | high = on, through a relay driver; low after reset |
//! | supply voltage | PA3 (ADC1 IN3) | 100 kΩ / 10 kΩ divider from the vehicle supply (×11) |
//! | LEDs | PB0 green, PB7 blue, PB14 red | alive (blinks), unit link up, supply low |
//! | Ethernet | PA1, PA2, PA7, PC1, PC4, PC5, PB13, PG11, PG13 | the Nucleo's RMII PHY |
//!
//! The board is 192.168.77.2 and listens on UDP port [`BOARD_PORT`]; it sends to the unit at
//! 192.168.77.1 port [`UNIT_PORT`] and ignores datagrams from any other address. An independent
//! watchdog resets the MCU if the main loop stalls for half a second; relays are off from reset
//! until the unit switches them on again.
#![no_std]
#![no_main]

use defmt::{Display2Format, info, unwrap, warn};
use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_stm32::adc::{Adc, SampleTime};
use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::gpio::{Input as InputPin, Level, Output, Pull, Speed};
use embassy_stm32::peripherals::{ADC1, ETH, ETH_SMA, PA3};
use embassy_stm32::rng::Rng;
use embassy_stm32::time::Hertz;
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_stm32::{Config, Peri, bind_interrupts, eth, peripherals, rcc, rng};
use embassy_time::{Duration, Instant, Ticker, with_timeout};
use io_logic::{BOARD_PORT, Board, Input, MAX_DATAGRAM, UNIT_PORT};
use static_cell::StaticCell;
use {defmt_rtt as _, panic_probe as _};

/// The board's address on the link to the unit.
const BOARD_IP: Ipv4Address = Ipv4Address::new(192, 168, 77, 2);
/// The unit's address: commands are accepted from it only.
const UNIT_IP: Ipv4Address = Ipv4Address::new(192, 168, 77, 1);
/// The inputs, in the order of the input pins in `main`.
const INPUTS: [Input; 6] =
    [Input::Ignition, Input::Door(0), Input::Door(1), Input::Door(2), Input::Door(3), Input::Panic];
/// What the board reports in its heartbeat.
const FIRMWARE: &str = concat!("io-firmware ", env!("CARGO_PKG_VERSION"));
/// Supply divider ratio (100 kΩ over 10 kΩ) and the ADC's reference, in millivolts.
const DIVIDER: u32 = 11;
const VREF_MV: u32 = 3300;
/// How long a send may wait for room in the socket (e.g. while the unit's MAC is unknown) before
/// the message is dropped: the next status heals it, and the inputs keep being read.
const SEND_TIMEOUT: Duration = Duration::from_millis(2);

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    HASH_RNG => rng::InterruptHandler<peripherals::RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

/// The supply voltage input.
struct Supply {
    adc: Adc<'static, ADC1>,
    pin: Peri<'static, PA3>,
}

impl Supply {
    /// The vehicle supply in millivolts: the mean of four conversions (a few microseconds).
    fn millivolts(&mut self) -> u16 {
        let raw: u32 = (0..4).map(|_| u32::from(self.adc.blocking_read(&mut self.pin, SampleTime::CYCLES144))).sum();
        let mv = raw / 4 * VREF_MV * DIVIDER / 4095;
        u16::try_from(mv).unwrap_or(u16::MAX)
    }
}

fn clocks() -> Config {
    // 8 MHz from the ST-LINK (HSE bypass) → 168 MHz system clock, 48 MHz for the RNG.
    let mut config = Config::default();
    config.rcc.hse = Some(rcc::Hse { freq: Hertz(8_000_000), mode: rcc::HseMode::Bypass });
    config.rcc.pll_src = rcc::PllSource::HSE;
    config.rcc.pll = Some(rcc::Pll {
        prediv: rcc::PllPreDiv::DIV4,
        mul: rcc::PllMul::MUL168,
        divp: Some(rcc::PllPDiv::DIV2),
        divq: Some(rcc::PllQDiv::DIV7),
        divr: None,
    });
    config.rcc.ahb_pre = rcc::AHBPrescaler::DIV1;
    config.rcc.apb1_pre = rcc::APBPrescaler::DIV4;
    config.rcc.apb2_pre = rcc::APBPrescaler::DIV2;
    config.rcc.sys = rcc::Sysclk::PLL1_P;
    config
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(clocks());
    info!("{} starting", FIRMWARE);

    // Outputs first, so the relays are driven off as early as possible.
    let mut relays = [
        Output::new(p.PD12, Level::Low, Speed::Low),
        Output::new(p.PD13, Level::Low, Speed::Low),
        Output::new(p.PD14, Level::Low, Speed::Low),
        Output::new(p.PD15, Level::Low, Speed::Low),
    ];
    let mut led_alive = Output::new(p.PB0, Level::Low, Speed::Low);
    let mut led_link = Output::new(p.PB7, Level::Low, Speed::Low);
    let mut led_power = Output::new(p.PB14, Level::Low, Speed::Low);
    // (pin, active when low)
    let inputs = [
        (InputPin::new(p.PE2, Pull::Up), true),
        (InputPin::new(p.PE3, Pull::Up), true),
        (InputPin::new(p.PE4, Pull::Up), true),
        (InputPin::new(p.PE5, Pull::Up), true),
        (InputPin::new(p.PE6, Pull::Up), true),
        (InputPin::new(p.PC13, Pull::None), false),
    ];
    let mut supply = Supply { adc: Adc::new(p.ADC1), pin: p.PA3 };

    let mut rng = Rng::new(p.RNG, Irqs);
    let mut seed = [0; 8];
    unwrap!(rng.async_fill_bytes(&mut seed).await);
    // A locally administered MAC address from the chip's unique id.
    let uid = embassy_stm32::uid::uid();
    let mac = [0x02, 0x00, uid[0] ^ uid[4], uid[1] ^ uid[5], uid[2] ^ uid[8], uid[3] ^ uid[9] ^ uid[10] ^ uid[11]];

    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    let device = Ethernet::new(
        PACKETS.init(PacketQueue::new()),
        p.ETH,
        Irqs,
        p.PA1,
        p.PA7,
        p.PC4,
        p.PC5,
        p.PG13,
        p.PB13,
        p.PG11,
        mac,
        p.ETH_SMA,
        p.PA2,
        p.PC1,
    );
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(BOARD_IP, 24),
        gateway: None,
        dns_servers: heapless::Vec::new(),
    });
    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    let (stack, runner) =
        embassy_net::new(device, net_config, RESOURCES.init(StackResources::new()), u64::from_le_bytes(seed));
    spawner.spawn(unwrap!(net_task(runner)));

    let mut rx_meta = [PacketMetadata::EMPTY; 4];
    let mut rx_buffer = [0; 4 * MAX_DATAGRAM];
    let mut tx_meta = [PacketMetadata::EMPTY; 8];
    let mut tx_buffer = [0; 8 * MAX_DATAGRAM];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx_buffer, &mut tx_meta, &mut tx_buffer);
    unwrap!(socket.bind(BOARD_PORT));
    let unit = IpEndpoint::new(IpAddress::Ipv4(UNIT_IP), UNIT_PORT);

    let start = Instant::now();
    let now = || start.elapsed().as_millis();
    let mut board =
        Board::new(io_logic::Config { outputs: relays.len() as u8, ..Default::default() }, INPUTS, FIRMWARE, 0);
    let mut watchdog = IndependentWatchdog::new(p.IWDG, 500_000);
    watchdog.unleash();
    info!("listening on {}:{}, unit at {}:{}", BOARD_IP, BOARD_PORT, UNIT_IP, UNIT_PORT);

    let mut ticker = Ticker::every(Duration::from_millis(1));
    let mut rx = [0u8; MAX_DATAGRAM];
    let mut tx = [0u8; MAX_DATAGRAM];
    loop {
        match select(ticker.next(), socket.recv_from(&mut rx)).await {
            Either::First(()) => {}
            Either::Second(Ok((len, meta))) => {
                if meta.endpoint.addr != unit.addr {
                    warn!("ignored a datagram from {}", meta.endpoint);
                } else if let Err(e) = board.handle_datagram(&rx[..len], now()) {
                    warn!("bad datagram from the unit: {}", Display2Format(&e));
                }
                continue;
            }
            Either::Second(Err(e)) => {
                warn!("receive failed: {}", e);
                continue;
            }
        }

        let t = now();
        for (index, (pin, active_low)) in inputs.iter().enumerate() {
            board.set_input(index, pin.is_low() == *active_low, t);
        }
        board.measure_supply(supply.millivolts(), t);
        let was_lost = board.link_lost();
        board.poll(t);
        if board.link_lost() && !was_lost {
            warn!("no command from the unit: outputs in their safe state");
        }
        for (n, relay) in relays.iter_mut().enumerate() {
            relay.set_level(Level::from(board.output(n as u8)));
        }
        led_alive.set_level(Level::from(t % 1000 < 500));
        led_link.set_level(Level::from(board.stats().commands > 0 && !board.link_lost()));
        led_power.set_level(Level::from(board.power_low()));
        while let Some(datagram) = board.next_datagram(&mut tx) {
            match with_timeout(SEND_TIMEOUT, socket.send_to(datagram, unit)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!("send failed: {}", e),
                Err(_) => warn!("send timed out: message dropped"),
            }
        }
        watchdog.pet();
    }
}
