export { Channel, UsbmuxError, type ChannelOptions, type Reply } from './channel.js';
export { UsbmuxClient, type Listener, type TunnelDescription, type UsbmuxDevice, type UsbmuxEvent } from './usbmux-client.js';
export { parseStatsReply, type ConnectionStats, type DaemonStats, type DeviceStats } from './stats.js';
export { DeviceWatcher, type DeviceWatcherEvents } from './device-watcher.js';
