// The shapes of what the addon is given to describe a device: USB and cable
// descriptors, FunctionFS interfaces, mux packets built or decoded by the
// testing surface, and a Unix peer's credentials. Types only: importing them
// loads nothing.

export interface EndpointDescriptor {
  address: number;
  attributes: number;
  maxPacketSize: number;
}

export interface InterfaceDescriptor {
  number: number;
  interfaceClass: number;
  subclass: number;
  protocol: number;
  endpoints: EndpointDescriptor[];
}

export interface ConfigurationDescriptor {
  value: number;
  interfaces: InterfaceDescriptor[];
}

/** What a cable's device end announces in its first message. */
export interface CableDescriptor {
  vendorId: number;
  productId: number;
  bcdDevice?: number;
  /** libusb_speed: 1 low, 2 full, 3 high, 4 super, 5 super+ */
  speed?: number;
  activeConfiguration?: number;
  serial: string;
  configurations: ConfigurationDescriptor[];
}

/**
 * What native code needs to open a phone that discovery found: where it is,
 * what it must still be (checked against libusb's cached descriptor before
 * anything is opened), and the configuration/interface/endpoints chosen by
 * src/native/config-select.ts.
 */
export interface UsbOpenRequest {
  busNumber: number;
  deviceAddress: number;
  vendorId: number;
  productId: number;
  configuration: number;
  interfaceNumber: number;
  endpointIn: number;
  endpointOut: number;
  maxPacketSize: number;
}


export interface FfsEndpointSpec {
  direction: 'in' | 'out';
  /** Default 'bulk'. */
  type?: 'bulk' | 'interrupt';
  /** Interrupt only (bulk endpoints take the interface's sizes): 1..64. */
  maxPacketSize?: number;
  /** Interrupt only: the polling interval in ms. */
  intervalMs?: number;
}

/** One FunctionFS interface; every field defaults to the mux interface's. */
export interface FfsInterfaceSpec {
  interfaceClass?: number;
  subclass?: number;
  protocol?: number;
  name?: string;
  /** wMaxPacketSize of the bulk endpoints at full speed (8/16/32/64). */
  fullSpeedMaxPacket?: number;
  /** ... and at high speed (512). */
  highSpeedMaxPacket?: number;
  /** In descriptor order (= ep1, ep2... files); the mux: OUT then IN. */
  endpoints?: FfsEndpointSpec[];
}

export interface DecodedPacket {
  protocol: number;
  length: number;
  magic?: number;
  txSeq?: number;
  rxSeq?: number;
  tcp?: { sport: number; dport: number; seq: number; ack: number; flags: number; window: number };
  payload: Buffer;
}

export interface PacketSpec {
  version?: 1 | 2;
  protocol?: number;
  length?: number;
  magic?: number;
  txSeq?: number;
  rxSeq?: number;
  tcp?: { sport?: number; dport?: number; seq?: number; ack?: number; flags?: number; window?: number; dataOffset?: number };
  payload?: Buffer;
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}
