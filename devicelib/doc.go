// Package devicelib is fotagate's reference device in Go: it takes one firmware image from a
// gateway into a staging flash slot, resumes a cut download where its flash and state say it
// may, verifies the slot before marking the image bootable, and simulates the bootloader that
// raises the anti-rollback floor only when the verified image boots.
//
// It sits at the end of the data flow, below gateway/server: protocol drives the wire,
// devicelib owns the flash and the durable state. Tests, the demo and the bench run many
// Devices in one process over MemFlash and MemStore; cmd/fotadev is one Device on files.
//
// Durability rules, in the order the code depends on them:
//
//   - The boot counter goes into the handshake's nonce, so it is incremented and saved
//     before every session, never after.
//   - The resume record names the image being downloaded and its durable offset D: every byte
//     of the slot below D has been written and synced before D was saved, and only then is D
//     acknowledged to the gateway. Nothing past D is trusted: a resume rebuilds the running
//     hash from flash [0, D) and checks that the rest of D's sector is still erased.
//   - A new image's resume record is saved before the first sector is erased, so the record
//     never describes bytes that are gone.
//   - The image is marked pending only after the whole slot, read back from flash, matches the
//     manifest digest (and the vendor signature when vendor keys are configured); the running
//     sequence, the anti-rollback floor, is raised only by Reboot, when that image boots
//     (MCUboot raised its counter before confirmation once and bricked devices).
package devicelib
