{
  "targets": [
    {
      "target_name": "tsmuxd",
      "sources": [
        "<!@(node -p \"const s = require('./binding-sources.json'); s.shared.concat(s.tsmuxd).join(' ')\")"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "include_dirs": [
        "native",
        "<!@(pkg-config --cflags-only-I libusb-1.0 | sed s/-I//g)"
      ],
      "libraries": [
        "<!@(pkg-config --libs libusb-1.0)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-fvisibility=hidden"
      ]
    }
  ]
}
