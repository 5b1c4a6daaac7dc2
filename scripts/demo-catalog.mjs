#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// The demo catalog: writes services/catalog/demo/catalog.json (what
// `agora up` seeds into an empty catalog and `agora seed` adds to a running
// shop) and one generated SVG picture per product under web/img/products/,
// which the gateway serves as static files; each product's image_url is
// that picture's path ("/img/products/<sku>.svg").
// Usage: node scripts/demo-catalog.mjs   (run again after editing the lists)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// slug, name, description, colour, glyph (a simple shape drawn on the picture)
const CATEGORIES = [
    ['books', 'Books', 'Paper and ink, for long evenings.', '#3b5b92', 'book'],
    ['audio', 'Audio', 'Headphones, speakers and everything that makes sound.', '#7a3b92', 'wave'],
    ['kitchen', 'Kitchen', 'Tools for cooks and coffee people.', '#b5542d', 'cup'],
    ['outdoor', 'Outdoor', 'Gear for trails, tents and rain.', '#2d7a4f', 'mountain'],
    ['stationery', 'Stationery', 'Notebooks, pens and paper goods.', '#8a7a2d', 'pen'],
    ['games', 'Games', 'Board games, cards and puzzles for the table.', '#a8324a', 'die'],
    ['home', 'Home', 'Lamps, blankets and things that make a room.', '#2d6f8a', 'lamp'],
];

// sku, name, description, price in cents (EUR), active (default true)
const PRODUCTS = {
    books: [
        ['BK-001', 'The Pragmatic Programmer', 'A classic on the craft of software development, 20th anniversary edition.', 4290],
        ['BK-002', 'Designing Data-Intensive Applications', 'Reliable, scalable and maintainable systems: storage, replication, streams.', 4850],
        ['BK-003', 'The C Programming Language', "Kernighan and Ritchie's concise tour of C, second edition.", 5600],
        ['BK-004', 'Building Microservices', 'Designing fine-grained systems, second edition.', 4490],
        ['BK-005', 'Site Reliability Engineering', 'How Google runs production systems.', 3990],
        ['BK-006', 'Release It!', 'Design and deploy production-ready software: stability patterns and antipatterns.', 3890],
        ['BK-007', 'Database Internals', 'A deep dive into how distributed data systems work.', 4690],
        ['BK-008', 'The Art of Unix Programming', 'Philosophy, design and practice of the Unix tradition.', 3590],
    ],
    audio: [
        ['AU-001', 'Wireless Headphones', 'Over-ear, noise cancelling, 30 hours of battery.', 17900],
        ['AU-002', 'Studio Monitor Speakers', 'A pair of active near-field monitors.', 29900],
        ['AU-003', 'Portable Bluetooth Speaker', 'Waterproof, pocket-sized, surprisingly loud.', 6990],
        ['AU-004', 'In-Ear Earbuds', 'Wired earbuds with a microphone.', 1990],
        ['AU-005', 'Turntable', 'Belt-drive record player with a built-in preamp.', 24900],
        ['AU-006', 'USB Microphone', 'Cardioid condenser microphone for voice and podcasts.', 8990],
        ['AU-007', 'Headphone Amplifier', 'A small desktop amplifier for demanding headphones.', 12900],
    ],
    kitchen: [
        ['KI-001', "Chef's Knife", 'A 20 cm forged steel knife.', 8900],
        ['KI-002', 'Pour-Over Coffee Dripper', 'Ceramic dripper for one or two cups.', 2490],
        ['KI-003', 'Burr Coffee Grinder', 'Conical burrs, 40 grind settings.', 12900],
        ['KI-004', 'Cast Iron Skillet', 'Pre-seasoned, 26 cm, lasts a lifetime.', 3990],
        ['KI-005', 'Digital Kitchen Scale', 'Weighs to the gram up to 5 kg.', 1990],
        ['KI-006', 'Gooseneck Kettle', 'Electric kettle with temperature control for pour-over.', 7490],
        ['KI-007', 'Wooden Cutting Board', 'End-grain beech, 40 by 30 cm.', 4990],
        ['KI-008', 'French Press', 'Stainless steel, double-walled, one litre.', 3490],
    ],
    outdoor: [
        ['OU-001', 'Two-Person Tent', 'Light three-season tent, 2.1 kg.', 21900],
        ['OU-002', 'Rain Jacket', 'Waterproof and breathable shell.', 14900],
        ['OU-003', 'Headlamp', '400 lumens, rechargeable.', 3490],
        ['OU-004', 'Trekking Poles', 'Adjustable aluminium poles, a pair.', 5990],
        ['OU-005', 'Insulated Water Bottle', 'Keeps drinks cold for 24 hours.', 2990],
        ['OU-006', 'Sleeping Bag', 'Down sleeping bag, comfortable to 2 degrees.', 18900],
        ['OU-007', 'Camping Stove', 'Compact gas stove with a piezo igniter.', 4490],
    ],
    stationery: [
        ['ST-001', 'Dot Grid Notebook', 'A5, 160 pages of 100 g paper.', 2190],
        ['ST-002', 'Fountain Pen', 'Steel nib, medium, with a converter.', 3490],
        ['ST-003', 'Gel Pens, Pack of 10', 'Assorted colours, 0.5 mm.', 990],
        ['ST-004', 'Desk Organizer', 'Bamboo tray with compartments.', 2790, false],
        ['ST-005', 'Mechanical Pencil', '0.5 mm, brass body, knurled grip.', 1890],
        ['ST-006', 'Washi Tape Set', 'Twelve rolls of decorative paper tape.', 1290],
        ['ST-007', 'Leather Notebook Cover', 'Fits A5 notebooks, ages beautifully.', 4590],
    ],
    games: [
        ['GA-001', 'Strategy Board Game', 'Build, trade and settle: two to four players.', 3990],
        ['GA-002', 'Deck of Playing Cards', 'Linen finish, 52 cards and two jokers.', 890],
        ['GA-003', '1000-Piece Puzzle', 'A map of the old world in a thousand pieces.', 1990],
        ['GA-004', 'Chess Set', 'Wooden pieces and a folding board.', 5490],
        ['GA-005', 'Cooperative Card Game', 'Play together against the game, 45 minutes.', 2490],
        ['GA-006', 'Dice Set', 'Seven polyhedral dice in a cloth bag.', 1190],
    ],
    home: [
        ['HO-001', 'Desk Lamp', 'LED lamp with a dimmer and warm light.', 5990],
        ['HO-002', 'Wool Blanket', 'Merino wool, 130 by 180 cm.', 8990],
        ['HO-003', 'Ceramic Plant Pot', 'Glazed pot with a saucer, 15 cm.', 2290],
        ['HO-004', 'Wall Clock', 'Silent movement, 30 cm, oak frame.', 3990],
        ['HO-005', 'Scented Candle', 'Cedar and vanilla, 40 hours.', 1690],
        ['HO-006', 'Linen Cushion Cover', 'Stone-washed linen, 45 by 45 cm.', 1990],
        ['HO-007', 'Bookshelf Speaker Stand', 'Steel stands for small speakers, a pair.', 6990, false],
    ],
};

const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// Words of 'text' in lines of at most 'width' characters.
function wrap(text, width) {
    const lines = [];
    let cur = '';
    for (const w of text.split(' ')) {
        if (cur && cur.length + 1 + w.length > width) {
            lines.push(cur);
            cur = w;
        } else cur = cur ? `${cur} ${w}` : w;
    }
    if (cur) lines.push(cur);
    return lines.slice(0, 3);
}

const GLYPHS = {
    book: '<rect x="150" y="90" width="100" height="130" rx="6" fill="#fff" opacity=".9"/><rect x="160" y="90" width="8" height="130" fill="#000" opacity=".15"/>',
    wave: '<path d="M110 160 q22 -60 45 0 t45 0 t45 0 t45 0" stroke="#fff" stroke-width="12" fill="none" stroke-linecap="round" opacity=".9"/>',
    cup: '<rect x="145" y="110" width="90" height="100" rx="12" fill="#fff" opacity=".9"/><circle cx="250" cy="150" r="22" stroke="#fff" stroke-width="10" fill="none" opacity=".9"/>',
    mountain: '<path d="M100 220 L170 110 L210 170 L235 140 L300 220 Z" fill="#fff" opacity=".9"/>',
    pen: '<rect x="190" y="80" width="22" height="130" rx="6" fill="#fff" opacity=".9" transform="rotate(35 200 150)"/>',
    die: '<rect x="140" y="95" width="120" height="120" rx="18" fill="#fff" opacity=".9"/><circle cx="170" cy="125" r="10"/><circle cx="200" cy="155" r="10"/><circle cx="230" cy="185" r="10"/>',
    lamp: '<path d="M160 90 h80 l25 70 h-130 z" fill="#fff" opacity=".9"/><rect x="195" y="160" width="10" height="50" fill="#fff" opacity=".9"/><rect x="165" y="208" width="70" height="10" rx="4" fill="#fff" opacity=".9"/>',
};

function svg(product, cat) {
    const [, , , color, glyph] = cat;
    const title = wrap(product.name, 22)
        .map((l, i) => `<text x="200" y="${285 + i * 30}" font-size="24" font-weight="600" text-anchor="middle" fill="#fff">${esc(l)}</text>`)
        .join('');
    const price = `€${(product.price.amount / 100).toFixed(2)}`;
    return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" height="400" role="img" aria-label="${esc(product.name)}">
<rect width="400" height="400" fill="${color}"/>
<circle cx="200" cy="155" r="105" fill="#000" opacity=".12"/>
${GLYPHS[glyph]}
${title}
<text x="20" y="385" font-size="16" fill="#fff" opacity=".8" font-family="monospace">${esc(product.sku)}</text>
<text x="380" y="385" font-size="18" fill="#fff" text-anchor="end" font-family="sans-serif">${esc(price)}</text>
</svg>
`;
}

const catalog = {
    categories: CATEGORIES.map(([slug, name, description]) => ({ slug, name, description })),
    products: [],
};
const imgDir = path.join(root, 'web/img/products');
fs.mkdirSync(imgDir, { recursive: true });
for (const f of fs.readdirSync(imgDir)) if (f.endsWith('.svg')) fs.unlinkSync(path.join(imgDir, f));
for (const cat of CATEGORIES) {
    for (const [sku, name, description, amount, active = true] of PRODUCTS[cat[0]]) {
        const file = `${sku.toLowerCase()}.svg`;
        const p = { sku, name, description, price: { amount, currency: 'EUR' }, category: cat[0], image_url: `/img/products/${file}`, active };
        catalog.products.push(p);
        fs.writeFileSync(path.join(imgDir, file), svg(p, cat));
    }
}
fs.writeFileSync(path.join(root, 'services/catalog/demo/catalog.json'), `${JSON.stringify(catalog, null, 1)}\n`);
console.log(`${catalog.categories.length} categories, ${catalog.products.length} products, pictures in web/img/products/`);
