package bootconfig

import (
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, and that whatever it accepts is
// a valid document that survives an encode/decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	valid, err := validDocument().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":99}`))
	f.Add([]byte(`{"version":1,"listeners":[{"name":"PLAINTEXT","port":9092}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, input []byte) {
		doc, err := Decode(input)
		if err != nil {
			return
		}
		if err := doc.Validate(); err != nil {
			t.Fatalf("Decode returned a document that does not validate: %v", err)
		}
		again, err := doc.Encode()
		if err != nil {
			t.Fatalf("re-encoding an accepted document: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("decoding a re-encoded document: %v", err)
		}
		if !reflect.DeepEqual(doc, back) {
			t.Fatalf("round trip changed the document:\n%+v\n%+v", doc, back)
		}
	})
}
