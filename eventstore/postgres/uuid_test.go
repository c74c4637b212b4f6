package postgres_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// BenchmarkEventIDs: a list of eight event ids encoded as a uuid[] parameter, and one id
// scanned, as uuid.UUID (through its driver.Valuer and sql.Scanner: text, parsed back) and as
// pgtype.UUID (binary at once), which the store passes and scans.
func BenchmarkEventIDs(b *testing.B) {
	m := pgtype.NewMap()
	ids := make([]uuid.UUID, 8)
	pg := make([]pgtype.UUID, len(ids))
	for i := range ids {
		ids[i] = uuid.New()
		pg[i] = pgtype.UUID{Bytes: ids[i], Valid: true}
	}
	for name, v := range map[string]any{"encode/uuid.UUID": ids, "encode/pgtype.UUID": pg} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for range b.N {
				var err error
				if buf, err = m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, v, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	src := ids[0][:]
	for name, dst := range map[string]any{"scan/uuid.UUID": new(uuid.UUID), "scan/pgtype.UUID": new(pgtype.UUID)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := m.Scan(pgtype.UUIDOID, pgtype.BinaryFormatCode, src, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
