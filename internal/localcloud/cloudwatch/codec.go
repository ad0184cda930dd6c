package cloudwatch

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// CloudWatch is served in the three protocols its model lists: the SDK for Go v2 speaks smithy
// rpc-v2-cbor, Debian's aws CLI (botocore 2.9) speaks awsQuery, and newer SDKs and CLIs may
// speak awsJson1_0 (X-Amz-Target: GraniteServiceVersion20100801.<Op>). All are decoded into one
// generic tree (maps, lists and scalars), which is then decoded into the operation's input
// struct by member name; outputs are encoded from structs into CBOR, JSON or awsQuery XML.
// Struct field names are the AWS member names.

// queryTree turns awsQuery parameters into a tree: "A.member.1.B" becomes
// {"A": [{"B": ...}]}, and other dotted names nested maps of strings. (CloudWatch's inputs have
// no maps, which awsQuery would write as "A.entry.N.key".)
func queryTree(params url.Values) (map[string]any, error) {
	root := map[string]any{}
	for key, vals := range params {
		if key == "Action" || key == "Version" || strings.HasPrefix(key, "X-Amz-") || len(vals) == 0 {
			continue
		}
		if err := insertPath(root, strings.Split(key, "."), vals[0]); err != nil {
			return nil, awsapi.Errorf("InvalidParameterValue", "parameter %s: %v", key, err)
		}
	}
	return listify(root).(map[string]any), nil
}

// indexed is a list being built from "member.N" parameters, by index.
type indexed map[int]any

func getChild(parent, key any) any {
	switch p := parent.(type) {
	case map[string]any:
		return p[key.(string)]
	case indexed:
		return p[key.(int)]
	}
	return nil
}

func setChild(parent, key, value any) {
	switch p := parent.(type) {
	case map[string]any:
		p[key.(string)] = value
	case indexed:
		p[key.(int)] = value
	}
}

// errConflict reports parameters that disagree on a member's shape (a list, a structure or a
// value), which whatever order they are read in cannot make a valid request.
var errConflict = errors.New("conflicts with another parameter of the same member")

// insertPath stores value under the dotted path.
func insertPath(root map[string]any, path []string, value string) error {
	var parent any = root
	var key any = path[0]
	for i := 1; i < len(path); i++ {
		if path[i] == "member" && i+1 < len(path) {
			idx, err := strconv.Atoi(path[i+1])
			if err != nil || idx < 1 || idx > maxListIndex {
				return fmt.Errorf("invalid list index %q", path[i+1])
			}
			list, ok := getChild(parent, key).(indexed)
			if !ok {
				if getChild(parent, key) != nil {
					return errConflict
				}
				list = indexed{}
				setChild(parent, key, list)
			}
			parent, key = list, idx
			i++
			continue
		}
		m, ok := getChild(parent, key).(map[string]any)
		if !ok {
			if getChild(parent, key) != nil {
				return errConflict
			}
			m = map[string]any{}
			setChild(parent, key, m)
		}
		parent, key = m, path[i]
	}
	if getChild(parent, key) != nil {
		return errConflict
	}
	setChild(parent, key, value)
	return nil
}

// maxListIndex bounds list indexes (PutMetricData's largest list holds 1000 items).
const maxListIndex = 100000

// listify turns the indexed lists of a tree into slices ordered by index.
func listify(v any) any {
	switch x := v.(type) {
	case indexed:
		idx := make([]int, 0, len(x))
		for i := range x {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		out := make([]any, len(idx))
		for j, i := range idx {
			out[j] = listify(x[i])
		}
		return out
	case map[string]any:
		for k, val := range x {
			x[k] = listify(val)
		}
		return x
	}
	return v
}

// cborTree turns a decoded CBOR value into the generic tree.
func cborTree(v cbor.Value) (any, error) {
	switch x := v.(type) {
	case cbor.Map:
		out := make(map[string]any, len(x))
		for k, val := range x {
			t, err := cborTree(val)
			if err != nil {
				return nil, err
			}
			if t != nil {
				out[k] = t
			}
		}
		return out, nil
	case cbor.List:
		out := make([]any, 0, len(x))
		for _, val := range x {
			t, err := cborTree(val)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	case cbor.String:
		return string(x), nil
	case cbor.Slice:
		return []byte(x), nil
	case cbor.Bool:
		return bool(x), nil
	case cbor.Uint, cbor.NegInt, cbor.Float32, cbor.Float64:
		f, err := cbor.AsFloat64(x)
		if err != nil {
			return nil, err
		}
		return f, nil
	case *cbor.Tag:
		t, err := cbor.AsTime(x)
		if err != nil {
			return nil, fmt.Errorf("decoding tagged value: %w", err)
		}
		return t.UTC(), nil
	case *cbor.Nil, *cbor.Undefined:
		return nil, nil
	}
	return nil, fmt.Errorf("unsupported CBOR value %T", v)
}

// decodeInput decodes a request of either protocol into in (a pointer to a struct).
func decodeInput(req *awsapi.Request, in any) error {
	var tree any
	switch req.Protocol {
	case awsapi.ProtocolRPCv2CBOR:
		body, err := requestBody(req)
		if err != nil {
			return err
		}
		if len(body) == 0 {
			tree = map[string]any{}
			break
		}
		v, err := cbor.Decode(body)
		if err != nil {
			return awsapi.Errorf("SerializationException", "Could not decode the CBOR body: %v", err)
		}
		if tree, err = cborTree(v); err != nil {
			return awsapi.Errorf("SerializationException", "Could not decode the CBOR body: %v", err)
		}
	case awsapi.ProtocolJSON:
		body, err := requestBody(req)
		if err != nil {
			return err
		}
		tree = map[string]any{}
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &tree); err != nil {
				return awsapi.Errorf("SerializationException", "Could not decode the JSON body: %v", err)
			}
		}
	default:
		t, err := queryTree(req.Params)
		if err != nil {
			return err
		}
		tree = t
	}
	if err := assign(reflect.ValueOf(in).Elem(), tree, ""); err != nil {
		return awsapi.Errorf("InvalidParameterValue", "%v", err)
	}
	return nil
}

// maxDecompressedBytes bounds a gzip-compressed request body once inflated.
const maxDecompressedBytes = 8 << 20

// requestBody returns the request payload, inflated when the client compressed it: the SDK
// gzips PutMetricData (Content-Encoding: gzip; the signature covers the compressed bytes).
func requestBody(req *awsapi.Request) ([]byte, error) {
	if !strings.Contains(strings.ToLower(req.HTTP.Header.Get("Content-Encoding")), "gzip") {
		return req.Body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(req.Body))
	if err != nil {
		return nil, awsapi.Errorf("SerializationException", "Could not inflate the gzip body: %v", err)
	}
	defer zr.Close()
	body, err := io.ReadAll(io.LimitReader(zr, maxDecompressedBytes+1))
	if err != nil {
		return nil, awsapi.Errorf("SerializationException", "Could not inflate the gzip body: %v", err)
	}
	if len(body) > maxDecompressedBytes {
		return nil, awsapi.ErrorfStatus(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The inflated request body exceeds %d bytes", maxDecompressedBytes)
	}
	return body, nil
}

var timeType = reflect.TypeOf(time.Time{})

// assign stores tree value v into dst, converting the query protocol's strings to numbers,
// booleans and timestamps as the destination type asks.
func assign(dst reflect.Value, v any, path string) error {
	if v == nil {
		return nil
	}
	if dst.Kind() == reflect.Pointer {
		elem := reflect.New(dst.Type().Elem())
		if err := assign(elem.Elem(), v, path); err != nil {
			return err
		}
		dst.Set(elem)
		return nil
	}
	if dst.Type() == timeType {
		t, err := toTime(v)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dst.Set(reflect.ValueOf(t))
		return nil
	}
	switch dst.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want a string", path)
		}
		dst.SetString(s)
	case reflect.Bool:
		switch b := v.(type) {
		case bool:
			dst.SetBool(b)
		case string:
			parsed, err := strconv.ParseBool(b)
			if err != nil {
				return fmt.Errorf("%s: want a boolean", path)
			}
			dst.SetBool(parsed)
		default:
			return fmt.Errorf("%s: want a boolean", path)
		}
	case reflect.Float64:
		f, err := toFloat(v)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dst.SetFloat(f)
	case reflect.Int32, reflect.Int64, reflect.Int:
		f, err := toFloat(v)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
			return fmt.Errorf("%s: want an integer", path)
		}
		dst.SetInt(int64(f))
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want a list", path)
		}
		out := reflect.MakeSlice(dst.Type(), len(list), len(list))
		for i, item := range list {
			if err := assign(out.Index(i), item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(out)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want a structure", path)
		}
		for i := 0; i < dst.NumField(); i++ {
			f := dst.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if val, ok := m[f.Name]; ok {
				if err := assign(dst.Field(i), val, strings.TrimPrefix(path+"."+f.Name, ".")); err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("%s: unsupported destination %s", path, dst.Type())
	}
	return nil
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, fmt.Errorf("want a number, got %q", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number")
}

func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case float64:
		return time.UnixMilli(int64(x * 1000)).UTC(), nil
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UTC(), nil
			}
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return time.UnixMilli(int64(f * 1000)).UTC(), nil
		}
		return time.Time{}, fmt.Errorf("want an ISO 8601 timestamp, got %q", x)
	}
	return time.Time{}, fmt.Errorf("want a timestamp")
}

// encodeOutput renders out (a struct pointer, or nil) in the request's protocol.
func encodeOutput(req *awsapi.Request, out any) (*awsapi.Response, error) {
	if req.Protocol == awsapi.ProtocolJSON {
		if out == nil {
			return awsapi.JSONResponse(req, struct{}{})
		}
		return awsapi.JSONResponse(req, toJSON(reflect.ValueOf(out)))
	}
	if req.Protocol == awsapi.ProtocolRPCv2CBOR {
		if out == nil {
			return &awsapi.Response{Header: map[string][]string{"Content-Type": {"application/cbor"}}}, nil
		}
		return awsapi.CBORResponse(toCBOR(reflect.ValueOf(out))), nil
	}
	if out == nil {
		return awsapi.QueryResponse(req, xmlns, nil)
	}
	return awsapi.QueryResponse(req, xmlns, xmlShape{reflect.ValueOf(out)})
}

// toCBOR encodes a value by reflection; nil pointers, nil slices and nil maps are omitted.
func toCBOR(v reflect.Value) cbor.Value {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == timeType {
		t := v.Interface().(time.Time)
		return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(t.UnixMilli()) / 1000)}
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return nil // absent members are omitted, as AWS omits them
		}
		return cbor.String(v.String())
	case reflect.Bool:
		return cbor.Bool(v.Bool())
	case reflect.Float64:
		return cbor.Float64(v.Float())
	case reflect.Int32, reflect.Int64, reflect.Int:
		n := v.Int()
		if n < 0 {
			return cbor.NegInt(uint64(-n - 1))
		}
		return cbor.Uint(uint64(n))
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make(cbor.List, 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			if item := toCBOR(v.Index(i)); item != nil {
				out = append(out, item)
			}
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := cbor.Map{}
		iter := v.MapRange()
		for iter.Next() {
			if item := toCBOR(iter.Value()); item != nil {
				out[iter.Key().String()] = item
			}
		}
		return out
	case reflect.Struct:
		out := cbor.Map{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if item := toCBOR(v.Field(i)); item != nil {
				out[f.Name] = item
			}
		}
		return out
	}
	return nil
}

// toJSON converts a value for awsJson: like toCBOR, with timestamps as epoch seconds.
func toJSON(v reflect.Value) any {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == timeType {
		return float64(v.Interface().(time.Time).UnixMilli()) / 1000
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return nil
		}
		return v.String()
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make([]any, 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			out = append(out, toJSON(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := map[string]any{}
		iter := v.MapRange()
		for iter.Next() {
			out[iter.Key().String()] = toJSON(iter.Value())
		}
		return out
	case reflect.Struct:
		out := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if item := toJSON(v.Field(i)); item != nil {
				out[f.Name] = item
			}
		}
		return out
	}
	return v.Interface()
}

// xmlShape renders a struct as awsQuery XML: fields as elements named like the field, lists
// as <member> elements, maps as <entry><key/><value/></entry>, timestamps in ISO 8601.
type xmlShape struct{ v reflect.Value }

func (x xmlShape) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return encodeXML(e, start, x.v)
}

func encodeXML(e *xml.Encoder, start xml.StartElement, v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == timeType {
		return e.EncodeElement(v.Interface().(time.Time).UTC().Format("2006-01-02T15:04:05.000Z"), start)
	}
	switch v.Kind() {
	case reflect.Float64:
		return e.EncodeElement(strconv.FormatFloat(v.Float(), 'g', -1, 64), start)
	case reflect.String:
		if v.String() == "" {
			return nil
		}
		return e.EncodeElement(v.String(), start)
	case reflect.Bool, reflect.Int32, reflect.Int64, reflect.Int:
		return e.EncodeElement(v.Interface(), start)
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if err := e.EncodeToken(start); err != nil {
			return err
		}
		for i := 0; i < v.Len(); i++ {
			if err := encodeXML(e, xml.StartElement{Name: xml.Name{Local: "member"}}, v.Index(i)); err != nil {
				return err
			}
		}
		return e.EncodeToken(start.End())
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		if err := e.EncodeToken(start); err != nil {
			return err
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			entry := xml.StartElement{Name: xml.Name{Local: "entry"}}
			if err := e.EncodeToken(entry); err != nil {
				return err
			}
			if err := e.EncodeElement(k.String(), xml.StartElement{Name: xml.Name{Local: "key"}}); err != nil {
				return err
			}
			if err := encodeXML(e, xml.StartElement{Name: xml.Name{Local: "value"}}, v.MapIndex(k)); err != nil {
				return err
			}
			if err := e.EncodeToken(entry.End()); err != nil {
				return err
			}
		}
		return e.EncodeToken(start.End())
	case reflect.Struct:
		if err := e.EncodeToken(start); err != nil {
			return err
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if err := encodeXML(e, xml.StartElement{Name: xml.Name{Local: f.Name}}, v.Field(i)); err != nil {
				return err
			}
		}
		return e.EncodeToken(start.End())
	}
	return fmt.Errorf("cannot encode %s as XML", v.Type())
}
