// The node sample: crypto, zlib and ICU number formatting.
const crypto = require('crypto');
const zlib = require('zlib');
const digest = crypto.createHash('sha256').update('capsa').digest('hex');
const packed = zlib.gzipSync('x'.repeat(1000));
const back = zlib.gunzipSync(packed).length;
console.log(digest);
console.log(`${back} bytes through gzip`);
console.log(new Intl.NumberFormat('de-DE').format(1234.5));
