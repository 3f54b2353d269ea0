# Prints the metadata keys and values of a GGUF file (e.g. a model found in a PyPI wheel).
import struct,sys
f=open(sys.argv[1],'rb')
def r(fmt): 
    s=struct.calcsize(fmt); return struct.unpack('<'+fmt,f.read(s))
def rs(): (n,)=r('Q'); return f.read(n).decode('utf8','replace')
T={0:'B',1:'b',2:'H',3:'h',4:'I',5:'i',6:'f',7:'?',10:'Q',11:'q',12:'d'}
def rv(t):
    if t==8: return rs()
    if t==9:
        (et,)=r('I');(n,)=r('Q')
        vals=[rv(et) for _ in range(n)]
        return f"[array {n} of type {et}] first={vals[:3]}"
    return r(T[t])[0]
magic=f.read(4); ver,=r('I'); nt,=r('Q'); nkv,=r('Q')
print(magic,ver,'tensors',nt,'kv',nkv)
for _ in range(nkv):
    k=rs(); (t,)=r('I'); v=rv(t)
    if isinstance(v,str) and len(v)>200: v=v[:200]+'...'
    print(k,'=',v)
