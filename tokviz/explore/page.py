"""The explorer's page (`tokviz explore`): the HTML view grown interactive.

One self-contained document: styles, script and colours are inline, nothing is fetched but the
app's own API. Model text enters the page only through `textContent` (never `innerHTML`); the
script runs under a Content-Security-Policy nonce, so nothing a model writes can run. The colour
scale is the one every view uses (`views.colors`), handed to the script as a 101-step table.
"""

from __future__ import annotations

from tokviz.run import tokens as tok
from tokviz.views.colors import css_gradient, prob_hex, tint_hex
from tokviz.views.html import CSS, _json_for_script

EXTRA_CSS = """
body{max-width:80rem}
.layout{display:grid;grid-template-columns:minmax(0,1fr) 22rem;gap:1.2rem;align-items:start}
@media (max-width:60rem){.layout{grid-template-columns:1fr}}
.panel{background:var(--card);border-radius:.5rem;padding:.7rem .9rem;margin:0 0 1rem}
.panel h2{font-size:1rem;margin:0 0 .5rem}
#prompt{width:100%;box-sizing:border-box;font:1rem ui-monospace,Menlo,monospace;min-height:3.2rem;background:var(--bg);color:var(--fg);border:1px solid var(--line);border-radius:.4rem;padding:.4rem}
.row-actions{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap;margin:.4rem 0}
.tok{cursor:pointer}.tok.sel{outline:2px solid var(--fg)}.tok.fork{box-shadow:inset 0 -3px 0 #3b6fd6}
.alt{display:grid;grid-template-columns:minmax(0,7rem) 1fr 3.6rem 3.6rem;gap:.4rem;align-items:center;width:100%;text-align:left;margin:.1rem 0;padding:.15rem .4rem}
.alt .name{font-family:ui-monospace,Menlo,monospace;overflow:hidden;text-overflow:ellipsis;white-space:pre}
.alt .bar{display:block;height:.6rem;border-radius:.2rem}.alt .pct,.alt .rw{text-align:right;font-variant-numeric:tabular-nums}
.alt .rw{color:#3b6fd6}.alt.on-path .name{font-weight:700}.alt.explored .name::after{content:" ↳";color:var(--muted)}
.alt-head{display:grid;grid-template-columns:minmax(0,7rem) 1fr 3.6rem 3.6rem;gap:.4rem;color:var(--muted);font-size:.8rem;padding:0 .4rem}
.slider{display:grid;grid-template-columns:5.5rem 1fr 3rem;gap:.5rem;align-items:center;font-size:.9rem}
.slider output{text-align:right;font-variant-numeric:tabular-nums}
.branch{display:flex;gap:.4rem;align-items:center;font-size:.9rem;margin:.15rem 0}
.branch.current>.pick{font-weight:700;border-color:var(--fg)}.branch .desc{flex:1;color:var(--muted);overflow-wrap:anywhere}
#status{min-height:1.4em;color:var(--muted);font-size:.9rem}#status.error{color:#c0392b}
.columns{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.shared{color:var(--muted)}
#graph .graph{max-height:75vh;overflow:auto}#graph img{max-width:100%;height:auto;cursor:zoom-in}
#graph img.zoom{max-width:none;cursor:zoom-out}#graph .views button[aria-pressed=true]{font-weight:bold}
.note{color:var(--muted);font-size:.8rem;margin:.4rem 0 0}
input[type=number]{width:5rem;font:inherit;background:var(--bg);color:var(--fg);border:1px solid var(--line);border-radius:.3rem}
"""

JS = r"""
(function(){
'use strict';
var cfg=JSON.parse(document.getElementById('tokviz-config').textContent);
var token=new URLSearchParams(location.search).get('token')||'';
var S={nodes:[],branches:[],prompt:'',k:0,version:0}, kids={}, cur=0, sel=null, pinned=false, running=false, compare=[];
window.tokvizTimes={};
function $(id){return document.getElementById(id);}
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!=null)e.textContent=text;return e;}
function pct(p){if(p>=0.9995)return p>=1?'100%':'>99.9%';if(p<0.0005)return p<=0?'0%':'<0.1%';return (p*100).toFixed(1)+'%';}
function step(p){return Math.max(0,Math.min(100,Math.round(p*100)));}
function status(text,error){var s=$('status');s.textContent=text||'';s.className=error?'error':'';}
function api(path,body){return fetch(path,{method:body?'POST':'GET',cache:'no-store',
 headers:{'X-Tokviz-Token':token,'Content-Type':'application/json'},body:body?JSON.stringify(body):undefined});}
function index(){kids={};S.nodes.forEach(function(n,i){(kids[n.p]=kids[n.p]||[]).push(i);});}
function settings(sampled){var t=sampled?+$('temperature').value:0;var seed=$('seed').value.trim();
 return {n:+$('count').value||20,temperature:t,top_k:sampled?+$('topk').value:0,top_p:sampled?+$('topp').value:1,
  seed:seed===''?null:+seed};}
function reweight(lps){var T=+$('temperature').value,K=+$('topk').value,P=+$('topp').value,w;
 if(T<=0){w=lps.map(function(_,i){return i===0?1:0;});}else{var m=lps[0]/T;w=lps.map(function(l){return Math.exp(l/T-m);});}
 if(K>0)w=w.map(function(x,i){return i<K?x:0;});
 var s=w.reduce(function(a,b){return a+b;},0);w=w.map(function(x){return x/s;});
 if(P<1){var c=0;w=w.map(function(x){var keep=c<P;c+=x;return keep?x:0;});s=w.reduce(function(a,b){return a+b;},0);w=w.map(function(x){return x/s;});}
 return w;}
function branchText(b){var parts=[];b.path.forEach(function(n,i){parts.push(b.pieces[i]);});return parts.join('');}
function describe(b,i){var n=b.path.length-(b.fork<0?0:S.nodes[b.fork].d), how=b.temperature>0?('T='+b.temperature+(b.top_k?' top-k '+b.top_k:'')+(b.top_p<1?' top-p '+b.top_p:'')+' seed '+b.seed):'greedy';
 var from=b.fork<0?'from the prompt':'from “'+S.nodes[b.fork].label+'”';
 return '#'+(i+1)+' '+from+' · '+how+' · '+n+(n===1?' new token':' new tokens')+(b.finish==='stop'?' · ended':b.finish==='cancelled'?' · cancelled':'');}
function renderText(){var box=$('text');box.textContent='';box.appendChild(el('span','prompt',S.prompt));
 var b=S.branches[cur];if(!b)return;
 b.path.forEach(function(n,i){var node=S.nodes[n],p=Math.exp(node.lp),piece=b.pieces[i];
  var bare=piece.replace(/^ +/,''),lead=bare?piece.slice(0,piece.length-bare.length):'';if(lead){box.appendChild(document.createTextNode(lead));piece=bare;}  // a leading space outside the box: wraps before the word
  var span=el('span','tok'+(n===b.fork?' fork':'')+(n===sel?' sel':'')+(piece===''?' frag':''),piece===''?'·':piece.replace(/\n/g,'↵\n').replace(/\t/g,'⇥\t'));
  span.tabIndex=0;span.dataset.n=n;span.style.background=cfg.tint[step(p)];span.setAttribute('aria-label',node.label+', '+pct(p));
  span.addEventListener('mouseenter',function(){if(!pinned)select(n,false);});
  span.addEventListener('click',function(){select(n,true);});
  span.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();select(n,true);}
   else if(e.key==='ArrowRight'||e.key==='ArrowLeft'){var sib=e.key==='ArrowRight'?span.nextElementSibling:span.previousElementSibling;if(sib&&sib.classList.contains('tok')){e.preventDefault();sib.focus();select(+sib.dataset.n,true);}}});
  box.appendChild(span);});}
function select(n,pin){sel=n;pinned=pin||pinned&&sel===n;document.querySelectorAll('#text .tok').forEach(function(s){s.classList.toggle('sel',+s.dataset.n===n);});renderAlts();}
function onPath(n){var b=S.branches[cur];return !!b&&b.path.indexOf(n)>=0;}
function renderAlts(){var box=$('alts');box.textContent='';
 if(sel===null||!S.nodes[sel]){box.appendChild(el('p','note','Point at or click a token to see the alternatives the model weighed there; click one to continue from it.'));return;}
 var parent=S.nodes[sel].p,sibs=(kids[parent]||[]).slice().sort(function(a,b){return S.nodes[b].lp-S.nodes[a].lp||a-b;});
 var w=reweight(sibs.map(function(i){return S.nodes[i].lp;}));
 var topP=Math.max.apply(null,sibs.map(function(i){return Math.exp(S.nodes[i].lp);}).concat([1e-9]));  // bars relative to the likeliest
 box.appendChild(el('h2',null,'Alternatives at step '+S.nodes[sel].d));
 var head=el('div','alt-head');['token','','model','reshaped'].forEach(function(t){head.appendChild(el('span',null,t));});box.appendChild(head);
 sibs.forEach(function(i,j){var node=S.nodes[i],p=Math.exp(node.lp);
  var r=el('button','alt'+(onPath(i)?' on-path':'')+(kids[i]?' explored':''));r.type='button';r.dataset.n=i;
  r.title='continue from this token';
  var bar=el('span','bar');bar.style.width=Math.max(2,Math.round(p/topP*100))+'%';bar.style.background=cfg.bar[step(p)];
  r.appendChild(el('span','name',node.label));r.appendChild(bar);r.appendChild(el('span','pct',pct(p)));r.appendChild(el('span','rw',pct(w[j])));
  r.addEventListener('click',function(){
   // a token the current branch already holds (not its last): switch to it, never a new one-token branch
   var b=S.branches[cur];if(onPath(i)&&!$('mode-sample').checked&&b.path[b.path.length-1]!==i){select(i,true);
    status('already on branch '+(cur+1)+': click its last token to continue it');return;}
   branchFrom(i,$('mode-sample').checked);});box.appendChild(r);});
 var mass=sibs.reduce(function(a,i){return a+Math.exp(S.nodes[i].lp);},0);
 box.appendChild(el('p','note','“reshaped”: these '+sibs.length+' returned alternatives (together '+pct(mass)+' of the model’s probability) re-weighted by the sliders; the model’s other tokens are not shown, so real sampling can differ.'));}
function renderBranches(){var box=$('branches');box.textContent='';
 S.branches.forEach(function(b,i){var row=el('div','branch'+(i===cur?' current':''));
  var pick=el('button','pick','view');pick.type='button';pick.addEventListener('click',function(){cur=i;renderAll();});
  var cb=el('input');cb.type='checkbox';cb.checked=compare.indexOf(i)>=0;cb.setAttribute('aria-label','compare branch '+(i+1));
  cb.addEventListener('change',function(){compare=compare.filter(function(x){return x!==i;});if(cb.checked)compare.push(i);compare=compare.slice(-2);renderAll();});
  var prune=el('button','prune','✕');prune.type='button';prune.title='prune this branch';prune.setAttribute('aria-label','prune branch '+(i+1));
  prune.addEventListener('click',function(){pruneBranch(i);});
  var desc=el('span','desc',describe(b,i));desc.title=branchText(b);
  row.appendChild(pick);row.appendChild(cb);row.appendChild(desc);row.appendChild(prune);box.appendChild(row);});}
function renderCompare(){var box=$('compare');box.textContent='';if(compare.length!==2||!S.branches[compare[0]]||!S.branches[compare[1]]){box.hidden=true;return;}
 box.hidden=false;var a=S.branches[compare[0]],b=S.branches[compare[1]],same=0;
 while(same<a.path.length&&same<b.path.length&&a.path[same]===b.path[same])same++;
 box.appendChild(el('h2',null,'Branches '+(compare[0]+1)+' and '+(compare[1]+1)+' side by side'));
 var cols=el('div','columns');[a,b].forEach(function(br){var col=el('div','text');col.appendChild(el('span','shared',S.prompt+br.pieces.slice(0,same).join('')));
  br.path.slice(same).forEach(function(n,i){var p=Math.exp(S.nodes[n].lp),s=el('span','tok',br.pieces[same+i]);s.style.background=cfg.tint[step(p)];col.appendChild(s);});
  cols.appendChild(col);});box.appendChild(cols);}
function renderGraph(){var d=$('graph');if(!d.open)return;var whole=$('graph-whole').getAttribute('aria-pressed')==='true';
 $('graph-img').src='graph.svg?token='+encodeURIComponent(token)+(whole||!S.branches[cur]?'':'&branch='+cur)+'&v='+S.version+'-'+S.nodes.length;
 $('graph-img').alt=whole?'the whole exploration as a tree of tokens':'the current branch: its tokens and the alternatives at each step';}
function renderAll(){index();renderText();renderAlts();renderBranches();renderCompare();renderGraph();
 $('prompt').value=S.prompt;ui();}
function ui(){$('cancel').hidden=!running;['run','sample'].forEach(function(id){$(id).disabled=running;});
 document.querySelectorAll('.alt,.prune').forEach(function(b){b.disabled=running;});
 $('sample').textContent=+$('temperature').value>0?'Sample from here':'Continue from here (greedy)';}
async function load(){var r=await api('api/state');if(!r.ok){status('the explorer did not answer ('+r.status+')',true);return;}
 var s=await r.json();S=s;if(cur>=S.branches.length)cur=Math.max(0,S.branches.length-1);if(sel!==null&&!S.nodes[sel])sel=null;renderAll();}
function onEvent(e){
 if(e.event==='branch'){if(e.existing){cur=e.branch;renderAll();status('already explored: showing branch '+(e.branch+1));}else status('generating…');}
 else if(e.event==='token'){
  S.nodes.length=e.nodes_from;e.nodes.forEach(function(n){S.nodes.push(n);});S.branches[e.index]=e.branch;cur=e.index;
  index();renderText();renderBranches();status('generating… '+e.branch.path.length+' tokens');
  if(!window.tokvizTimes.first)window.tokvizTimes.first=performance.now();}
 else if(e.event==='done'){if(e.finish==='existing')return;status(e.finish==='cancelled'?'cancelled after '+e.tokens+' tokens':e.finish==='stop'?'the model ended the text after '+e.tokens+' tokens':e.tokens+' tokens');}
 else if(e.event==='error'){status(e.message,true);}}
async function post(path,body,reset){if(running)return;running=true;ui();window.tokvizTimes={click:performance.now()};
 try{var r=await api(path,body);
  if(!r.ok){var j=await r.json().catch(function(){return {error:'the explorer refused ('+r.status+')'};});status(j.error,true);return;}
  if(reset){S={nodes:[],branches:[],prompt:body.prompt,k:S.k,version:S.version};cur=0;sel=null;pinned=false;compare=[];renderAll();}
  var reader=r.body.getReader(),dec=new TextDecoder(),buf='';
  for(;;){var x=await reader.read();if(x.done)break;buf+=dec.decode(x.value,{stream:true});var i;
   while((i=buf.indexOf('\n'))>=0){var line=buf.slice(0,i);buf=buf.slice(i+1);if(line)onEvent(JSON.parse(line));}}
 }catch(err){status('the connection to the explorer failed',true);}
 finally{running=false;await load();}}
function branchFrom(n,sampled){post('api/branch',Object.assign({node:n},settings(sampled)));}
async function pruneBranch(i){if(S.branches.length<2){status('the last branch cannot be pruned',true);return;}
 var r=await api('api/prune',{branch:i});if(!r.ok){var j=await r.json();status(j.error,true);return;}
 compare=[];if(cur>=i&&cur>0)cur--;S=await r.json();renderAll();status('branch '+(i+1)+' pruned');}
['temperature','topk','topp'].forEach(function(id){var inp=$(id);inp.addEventListener('input',function(){$(id+'-out').textContent=inp.value==='0'&&id==='topk'?'off':inp.value;renderAlts();ui();});});
$('sample').addEventListener('click',function(){branchFrom(sel===null?-1:sel,true);});
$('cancel').addEventListener('click',function(){api('api/cancel',{});});
$('run').addEventListener('click',function(){var p=$('prompt').value;if(!p.trim()){status('the prompt is empty',true);return;}
 if(S.branches.length>1&&!window.confirm('Start again from this prompt? The current exploration is replaced'+(cfg.save?' (it is kept next to '+cfg.save+')':' (download it first to keep it)')+'.'))return;
 post('api/prompt',{prompt:p},true);});
$('graph').addEventListener('toggle',renderGraph);
['graph-branch','graph-whole'].forEach(function(id){$(id).addEventListener('click',function(){
 $('graph-branch').setAttribute('aria-pressed',String(id==='graph-branch'));$('graph-whole').setAttribute('aria-pressed',String(id==='graph-whole'));renderGraph();});});
$('graph-img').addEventListener('click',function(){this.classList.toggle('zoom');});
// a graph more than twice as wide as its box would be scaled past reading (the whole exploration was
// 4,981 px drawn into 893): shown at its own size, scrolled; a click still toggles
$('graph-img').addEventListener('load',function(){var box=this.parentNode.clientWidth||1;
 this.classList.toggle('zoom',this.naturalWidth>2*box);});
$('download').href='exploration.json?token='+encodeURIComponent(token);
$('graph-link').href='graph.svg?token='+encodeURIComponent(token);
document.addEventListener('keydown',function(e){if(e.key==='Escape'){sel=null;pinned=false;renderAll();}});
$('theme').addEventListener('click',function(){var r=document.documentElement;
 var dark=r.dataset.theme?r.dataset.theme==='dark':window.matchMedia('(prefers-color-scheme: dark)').matches;r.dataset.theme=dark?'light':'dark';});
load();
})();
"""


def page(*, meta: str, nonce: str, save: str | None = None) -> str:
    """The explorer's page; its data comes from the app's API once loaded."""
    e = tok.markup
    config = {"tint": [tint_hex(i / 100, 0.25) for i in range(101)], "bar": [prob_hex(i / 100) for i in range(101)],
              "save": save}
    saved = (f"Saved to <code>{e(save)}</code> after every change." if save else
             "Not saved to a file: download it, or start with <code>--save FILE</code>.")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"><title>tokviz explore</title>'
        f"<style>{CSS.replace('SCALE', css_gradient())}{EXTRA_CSS}</style></head><body>"
        '<header><h1>tokviz explore</h1><button id="theme" type="button" aria-label="switch light and dark theme">◐ theme</button></header>'
        f'<p class="meta">{e(meta)}</p>'
        '<div class="layout"><main>'
        '<div class="panel"><label for="prompt"><strong>Prompt</strong></label><textarea id="prompt" rows="2"></textarea>'
        '<div class="row-actions"><button id="run" type="button">Run this prompt</button>'
        '<button id="cancel" type="button" hidden>Cancel</button><span id="status" role="status" aria-live="polite"></span></div></div>'
        '<section id="text" class="text" aria-label="prompt and the current branch"></section>'
        '<div class="legend" aria-hidden="true"><span>probability of the chosen token</span><span>0%</span>'
        '<span class="scale"></span><span>100%</span></div>'
        '<section id="compare" class="panel" hidden aria-label="two branches side by side"></section>'
        '<details id="graph"><summary>Show the token graph</summary><p class="note views">'
        '<button id="graph-branch" type="button" aria-pressed="true">the current branch</button> '
        '<button id="graph-whole" type="button" aria-pressed="false">the whole exploration</button> '
        '· fitted to the width: click it to see it at full size · '
        '<a id="graph-link" target="_blank" rel="noopener">open it on its own</a></p><div class="graph">'
        '<img id="graph-img" alt="the current branch: its tokens and the alternatives at each step"></div></details>'
        '</main><aside>'
        '<section class="panel" id="alts" aria-label="alternatives"></section>'
        '<section class="panel" aria-label="sampling"><h2>Sampling</h2>'
        '<div class="slider"><label for="temperature">temperature</label><input id="temperature" type="range" min="0" max="2" step="0.05" value="0"><output id="temperature-out">0</output></div>'
        '<div class="slider"><label for="topk">top-k</label><input id="topk" type="range" min="0" max="50" step="1" value="0"><output id="topk-out">off</output></div>'
        '<div class="slider"><label for="topp">top-p</label><input id="topp" type="range" min="0.05" max="1" step="0.05" value="1"><output id="topp-out">1</output></div>'
        '<div class="row-actions"><label for="count">tokens</label><input id="count" type="number" min="1" max="1000" value="20">'
        '<label for="seed">seed</label><input id="seed" type="number" min="0" placeholder="random"></div>'
        '<div class="row-actions"><span>a click on an alternative continues</span>'
        '<label><input type="radio" name="mode" id="mode-greedy" checked> greedily</label>'
        '<label><input type="radio" name="mode" id="mode-sample"> with these settings</label></div>'
        '<div class="row-actions"><button id="sample" type="button">Continue from here (greedy)</button></div>'
        '<p class="note">The sliders re-weight the shown alternatives at once, in this page; a continuation runs the model for real.</p></section>'
        '<section class="panel" aria-label="branches"><h2>Branches</h2><div id="branches"></div>'
        f'<div class="row-actions"><a id="download" download="exploration.json">Download the exploration</a></div><p class="note">{saved}</p></section>'
        '</aside></div>'
        f'<script id="tokviz-config" type="application/json">{_json_for_script(config)}</script>'
        f'<script nonce="{e(nonce)}">{JS}</script></body></html>\n'
    )
