export { Channel, UsbmuxError, type ChannelOptions, type Reply } from './channel.js';
export { UsbmuxClient, type Listener, type UsbmuxDevice, type UsbmuxEvent } from './usbmux-client.js';
