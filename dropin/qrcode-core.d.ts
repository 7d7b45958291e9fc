// The drop-in script imports only the encoder of the qrcode package (it draws
// the modules as SVG itself), which saves the canvas and SVG renderers from
// its bundle. @types/qrcode describes the package's main entry; the encoder
// module exports the same `create`.
declare module 'qrcode/lib/core/qrcode' {
  export const create: typeof import('qrcode').create;
}
