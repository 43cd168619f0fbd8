{
  "variables": {
    "variables": {
      "lwip_src_abs": "<!(bash scripts/build-lwip.sh --print-src)"
    },
    "lwip_src": "<!(node -p \"require('node:path').relative(process.cwd(), process.argv[1])\" \"<(lwip_src_abs)\")"
  },
  "targets": [
    {
      "target_name": "tsmuxd_lwip",
      "type": "static_library",
      "sources": [
        "<!@(node -p \"require('./binding-sources.json').lwip.map((f) => process.argv[1] + '/' + f).join(' ')\" \"<(lwip_src)\")"
      ],
      "include_dirs": [
        "<(lwip_src)/src/include",
        "native/tunnel/lwip_port"
      ],
      "cflags": [
        "-fvisibility=hidden",
        "-w"
      ]
    },
    {
      "target_name": "tsmuxd",
      "sources": [
        "<!@(node -p \"const s = require('./binding-sources.json'); s.shared.concat(s.tsmuxd).join(' ')\")"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
        "tsmuxd_lwip"
      ],
      "include_dirs": [
        "native",
        "native/tunnel/lwip_port",
        "<(lwip_src)/src/include",
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
